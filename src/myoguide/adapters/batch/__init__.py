"""The batch door: a FHIR Bulk Data export in, one audit row per DM/PM patient and a report out."""
