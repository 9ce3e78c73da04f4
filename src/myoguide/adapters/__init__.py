"""Adapters at the edge: CLI, JSON, FHIR, CDS Hooks, web and store all call the pure core."""
