"""Data pipeline: raw log -> filtered table -> split -> packed tensors."""
