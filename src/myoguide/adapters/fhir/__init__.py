"""FHIR R4 adapter: derive the contract's patient state from a Bundle, with data warnings."""

from myoguide.adapters.fhir.mapping import FhirWarning, MappingResult, bundle_to_state

__all__ = ["FhirWarning", "MappingResult", "bundle_to_state"]
