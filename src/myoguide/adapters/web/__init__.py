"""The clinician's web page: server-rendered views and the inline SVG of a patient's course."""
