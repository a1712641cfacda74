"""byai surrogates (see DESIGN.md)."""
