"""SMART App Launch 2.0: the page opened from inside an EHR (docs/smart.md, ADR 0021)."""
