"""The encoded guideline: data files, their schema and the loader."""
