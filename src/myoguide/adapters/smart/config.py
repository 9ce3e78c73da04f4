"""The EHRs registered under `smart` in the trust file, and the scopes the app asks for."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from myoguide.errors import InputError

# The resources the FHIR reader uses, each with the prefetch key it is read under.
RESOURCE_KEYS: Final[Mapping[str, str]] = {
    "Patient": "patient",
    "Condition": "conditions",
    "MedicationRequest": "medicationRequests",
    "MedicationStatement": "medicationStatements",
    "MedicationAdministration": "medicationAdministrations",
    "Observation": "weight",
    "AllergyIntolerance": "allergies",
}
# Observation serves two prefetch keys.
EXTRA_KEYS: Final[Mapping[str, tuple[str, ...]]] = {"Observation": ("weight", "height")}

READ_SCOPES: Final[tuple[str, ...]] = tuple(f"patient/{r}.rs" for r in RESOURCE_KEYS)


def scopes(ehr_launch: bool) -> str:
    """Return the scope string of a launch: EHR (`launch`) or standalone (`launch/patient`)."""
    first = "launch" if ehr_launch else "launch/patient"
    return " ".join((first, "openid", "fhirUser", *READ_SCOPES))


def same_url(url: str) -> str:
    """Return a URL as compared: one trailing slash ignored."""
    return url[:-1] if url.endswith("/") else url


@dataclass(frozen=True)
class SmartEhr:
    """One EHR the app may be launched from: its FHIR base (`iss`) and the app's client there."""

    iss: str
    client_id: str
    client_secret: str | None = None
    allow_http: bool = False
    allow_private: bool = False


class SmartEhrs:
    """The registered EHRs, looked up by `iss` (exactly, a trailing slash ignored)."""

    def __init__(self, ehrs: Sequence[SmartEhr]) -> None:
        self._by_iss: dict[str, SmartEhr] = {}
        for ehr in ehrs:
            key = same_url(ehr.iss)
            if key in self._by_iss:
                raise ValueError(f"smart: iss {ehr.iss!r} is registered twice")
            self._by_iss[key] = ehr

    def get(self, iss: str | None) -> SmartEhr | None:
        """Return the EHR registered under `iss`, or None."""
        return self._by_iss.get(same_url(iss)) if iss else None

    def __iter__(self) -> Iterator[SmartEhr]:
        """Iterate over the registered EHRs."""
        return iter(self._by_iss.values())

    def __bool__(self) -> bool:
        """Tell whether any EHR is registered."""
        return bool(self._by_iss)


def parse_smart(doc: Mapping[str, Any]) -> SmartEhrs:
    """Read the trust file's `smart` list (InputError naming the entry and field if wrong)."""
    entries = doc.get("smart", [])
    if not isinstance(entries, list):
        raise InputError("--trust: smart", "must be a list of EHRs")
    out = []
    for i, item in enumerate(entries):
        where = f"--trust: smart[{i}]"
        if not isinstance(item, dict):
            raise InputError(where, "must be an object with iss and client_id")
        for name in ("iss", "client_id"):
            if not isinstance(item.get(name), str) or not item[name]:
                raise InputError(f"{where}.{name}", "needs a non-empty string")
        secret = item.get("client_secret")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise InputError(f"{where}.client_secret", "must be a non-empty string if given")
        iss = item["iss"]
        if not iss.startswith("https://") and not (
            iss.startswith("http://") and item.get("allow_http") is True
        ):
            raise InputError(f"{where}.iss", "must be an https URL (or set allow_http)")
        out.append(
            SmartEhr(
                iss,
                item["client_id"],
                secret,
                allow_http=item.get("allow_http") is True,
                allow_private=item.get("allow_private") is True,
            )
        )
    try:
        return SmartEhrs(out)
    except ValueError as exc:
        raise InputError("--trust: smart", str(exc)) from None
