"""The HTTP door: JSON API, CDS Hooks services and (later) the clinician's page."""
