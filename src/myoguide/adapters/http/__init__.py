"""The HTTP door: the FastAPI app, JSON API and CDS Hooks services (web mounts the pages on it)."""
