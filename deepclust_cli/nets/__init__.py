"""Network building blocks, one family per module."""
