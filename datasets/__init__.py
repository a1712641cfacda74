"""byai datasets (see DESIGN.md)."""
