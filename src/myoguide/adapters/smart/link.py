"""The keyed link from an EHR's patient to the local record: an HMAC, never the EHR's own id."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from myoguide.adapters.smart.config import same_url

# The pages' signing key is reused through a key of its own, so a link can never equal a
# signature the pages make (and the purpose is named should a second use ever be added).
_PURPOSE: Final = b"myoguide.ehr-patient-link/1"


class PatientLinks:
    """Turns (EHR, patient id) into the keyed hash the patient record is found by."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("secret_key: must not be empty")
        self._key = hmac.new(secret_key.encode(), _PURPOSE, hashlib.sha256).digest()

    def link(self, iss: str, patient_id: str) -> str:
        """Return the HMAC-SHA256 (hex) of the EHR's FHIR base and its patient id."""
        # The iss is in the message too, so one id at two EHRs gives two unrelated links;
        # its length first, so no (iss, id) pair can be spelled as another.
        base = same_url(iss)
        message = f"{len(base)}:{base}{patient_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


__all__ = ["PatientLinks"]
