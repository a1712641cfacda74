"""byai audit (see DESIGN.md)."""
