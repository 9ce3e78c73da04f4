"""The `smart` link a card carries when the calling EHR is registered for SMART App Launch.

Whether the CDS call at hand came from such an EHR is set per request by the SMART adapter
(adapters/smart/cards.py), which knows the registered EHRs; the card builder only asks here.
"""

from __future__ import annotations

from contextvars import ContextVar

# True while a CDS call whose fhirServer is a registered SMART EHR's iss is being answered.
FROM_SMART_EHR: ContextVar[bool] = ContextVar("myoguide_cds_from_smart_ehr", default=False)


def smart_link(base_url: str, chart_token: str) -> dict[str, str] | None:
    """Return the card's link into the app by SMART launch, or None to keep the absolute link."""
    if not FROM_SMART_EHR.get():
        return None
    return {
        "label": "Open this patient's assessment in myoguide",
        "url": base_url.rstrip("/") + "/smart/launch",
        "type": "smart",
        # The EHR hands it back in the token response; the app then opens this hand-off.
        "appContext": chart_token,
    }
