"""Conditions: the myositis diagnosis, its course and severity, and interstitial lung disease."""

from __future__ import annotations

from typing import Any, NamedTuple

from myoguide.adapters.fhir.codes import (
    CLINICAL_CONTROLLED,
    CLINICAL_FLARE,
    CONDITION_CATEGORY,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    EXT_ALTERNATIVES_EXCLUDED,
    EXT_CONTROL_ACHIEVED,
    EXT_ILD_REFRACTORY,
    IBM_CODES,
    IBM_DIAGNOSIS,
    ILD_CODE,
    JUVENILE_DIAGNOSIS,
    OTHER_MYOSITIS_DIAGNOSIS,
    SEVERITIES,
    SNOMED,
)
from myoguide.adapters.fhir.primitives import (
    SortKey,
    Warn,
    coding_codes,
    resource_label,
    shown,
    sort_key,
    stated_extensions,
    status_code,
)
from myoguide.knowledge.terminology import Terminology


class DiagnosisCandidate(NamedTuple):
    """A myositis Condition, the diagnosis it names and when it was recorded."""

    key: SortKey
    diagnosis: str
    resource: dict[str, Any]


class ConditionReader:
    """Keeps the myositis and lung disease Conditions, then sets the state fields they give."""

    __slots__ = ("diagnoses", "ild", "ild_stated", "term", "unresolved", "warn")

    def __init__(self, term: Terminology, warn: Warn) -> None:
        self.term = term
        self.warn = warn
        self.diagnoses: list[DiagnosisCandidate] = []
        self.ild = False
        self.ild_stated: set[bool] = set()
        self.unresolved: list[str] = []

    def read(self, res: dict[str, Any], i: int) -> None:
        """Note a myositis diagnosis or interstitial lung disease from a Condition."""
        verification = status_code(res.get("verificationStatus"), CONDITION_VERIFICATION)
        if verification == "refuted" or verification == "entered-in-error":
            return
        diagnosis: str | None = None
        unresolved = False
        ild = ILD_CODE in coding_codes(res.get("code"), SNOMED)
        for system, code in all_codings(res.get("code")):
            found = self.term.diagnosis(system, code)
            if found is None:
                continue
            # A code stating respiratory involvement says the lungs are involved, not how far.
            ild = ild or found.lung_involvement
            if found.meaning == "unresolved":
                unresolved = True
            elif diagnosis is None:
                diagnosis = state_diagnosis(found.meaning, system, found.code)
        if unresolved and diagnosis is None:
            self.unresolved.append(resource_label(res, i))
        if ild:
            self.ild = True
            stated = stated_extensions(res)
            if EXT_ILD_REFRACTORY in stated:
                refractory = stated[EXT_ILD_REFRACTORY]
                if refractory is None:
                    self.warn_extension_invalid(
                        EXT_ILD_REFRACTORY, "ild.refractory", resource_label(res, i)
                    )
                else:
                    self.ild_stated.add(refractory)
        if diagnosis is not None:
            # When it was recorded, else when it began; a problem-list entry wins a tie over an
            # encounter diagnosis of the same day (the list is the one kept up to date).
            when = res.get("recordedDate") or res.get("onsetDateTime")
            key = sort_key(when, i)
            self.diagnoses.append(DiagnosisCandidate(key, diagnosis, res))

    def finish_diagnosis(self, state: dict[str, Any]) -> None:
        """Set diagnosis, flare, disease control and severity from the chosen myositis Condition."""
        if not self.diagnoses and self.unresolved:
            self.warn(
                "diagnosis_unresolved",
                "the myositis diagnosis is coded as unspecified dermatopolymyositis, which does "
                "not say dermatomyositis or polymyositis; the diagnosis was not guessed",
                self.unresolved[0],
            )
            self.warn_control_unknown(None)
            return
        if not self.diagnoses:
            self.warn(
                "diagnosis_missing",
                "no dermatomyositis, polymyositis or other myositis diagnosis was found in the "
                "record",
                None,
            )
            self.warn_control_unknown(None)
            return
        key, diagnosis, res = max(self.diagnoses, key=rank)
        label = resource_label(res, key.position)
        if len({d.diagnosis for d in self.diagnoses}) > 1:
            self.warn(
                "multiple_diagnoses",
                "more than one myositis diagnosis; the most recently recorded "
                f"({shown(diagnosis)}) was used",
                label,
            )
        state["diagnosis"] = diagnosis
        verification = status_code(res.get("verificationStatus"), CONDITION_VERIFICATION)
        if verification in ("unconfirmed", "provisional", "differential"):
            self.warn(
                "diagnosis_unconfirmed",
                f"the myositis diagnosis is {verification}, not confirmed",
                label,
            )
        stated = stated_extensions(res)
        if EXT_ALTERNATIVES_EXCLUDED in stated:
            excluded = stated[EXT_ALTERNATIVES_EXCLUDED]
            if excluded is None:
                self.warn_extension_invalid(
                    EXT_ALTERNATIVES_EXCLUDED, "alternative_diagnoses_excluded", label
                )
            else:
                state["alternative_diagnoses_excluded"] = excluded
        control = stated.get(EXT_CONTROL_ACHIEVED)
        if EXT_CONTROL_ACHIEVED in stated and control is None:
            self.warn_extension_invalid(EXT_CONTROL_ACHIEVED, "disease_control_achieved", label)
        clinical = self.course_status(diagnosis, key)
        if clinical in CLINICAL_FLARE or clinical in CLINICAL_CONTROLLED:
            # The clinical status settles both facts; the extension may only confirm them.
            state["disease_control_achieved"] = True
            state["flare"] = clinical in CLINICAL_FLARE
            self.warn(
                "course_from_condition",
                f"the {shown(diagnosis)} diagnosis is marked {clinical}: read as "
                + (
                    "active again after control (a flare)"
                    if clinical in CLINICAL_FLARE
                    else "under control, not flaring"
                ),
                label,
            )
            if control is False:
                self.warn(
                    "control_conflict",
                    "the record says control was never reached but the diagnosis is marked "
                    f"{clinical}; the marking was used",
                    label,
                )
        elif control is True:
            state["disease_control_achieved"] = True
            if clinical == "active":
                state["flare"] = True  # active again after control
            else:
                self.warn_flare_unknown(label)
        elif control is False:
            # Never under control, so not active again after control.
            state["disease_control_achieved"] = False
            state["flare"] = False
        else:
            self.warn_control_unknown(label)
        severity = res.get("severity")
        if severity is not None:
            found = [SEVERITIES[c] for c in coding_codes(severity, SNOMED) if c in SEVERITIES]
            if found:
                state["severity"] = found[0]
            else:
                self.warn(
                    "severity_unknown",
                    "the severity is not recorded as mild, moderate or severe; not used",
                    label,
                )

    def course_status(self, diagnosis: str, chosen: SortKey) -> str | None:
        """Return the clinical status of the latest entry of the diagnosis that states a course."""
        best: tuple[tuple[bool, float, bool, int], str] | None = None
        for candidate in self.diagnoses:
            key, found, res = candidate
            clinical = status_code(res.get("clinicalStatus"), CONDITION_CLINICAL)
            if found != diagnosis or clinical is None:
                continue
            if clinical == "active" and key != chosen:
                continue  # plain active says nothing about control or flare
            if best is None or rank(candidate) > best[0]:
                best = (rank(candidate), clinical)
        return best[1] if best is not None else None

    def warn_control_unknown(self, label: str | None) -> None:
        """Warn that neither disease control nor flare could be derived."""
        self.warn(
            "control_unknown",
            "the record does not say whether the disease was ever brought under control",
            label,
        )
        self.warn_flare_unknown(label)

    def warn_flare_unknown(self, label: str | None) -> None:
        """Warn that whether the disease is flaring could not be derived."""
        self.warn(
            "flare_unknown",
            "the record does not say whether the disease is flaring now (the diagnosis is not "
            "marked relapse, recurrence, remission or inactive)",
            label,
        )

    def finish_ild(self, state: dict[str, Any]) -> None:
        """Set ild, refractory only when the ILD Conditions state it and agree."""
        if len(self.ild_stated) == 1:
            state["ild"] = {"present": True, "refractory": next(iter(self.ild_stated))}
            return
        state["ild"] = {"present": True, "refractory": False}
        if self.ild_stated:
            self.warn(
                "ild_refractory_conflict",
                "the interstitial lung disease entries disagree on whether it is refractory",
                None,
            )
        self.warn(
            "ild_refractory_unknown",
            "the record does not say whether the interstitial lung disease is refractory to "
            "treatment; it was taken as not refractory",
            None,
        )

    def warn_extension_invalid(self, url: str, field: str, label: str) -> None:
        """Warn that a stating extension carries no single boolean."""
        self.warn(
            "extension_invalid",
            f"a yes/no statement about {field.replace('_', ' ').replace('.', ' ')} is not "
            "readable; left as unknown",
            label,
        )


def all_codings(concept: object) -> list[tuple[str, str]]:
    """Return the (system, code) pairs of a CodeableConcept's codings."""
    out: list[tuple[str, str]] = []
    codings = concept.get("coding") if isinstance(concept, dict) else None
    if isinstance(codings, list):
        for coding in codings:
            if isinstance(coding, dict):
                system, code = coding.get("system"), coding.get("code")
                if isinstance(system, str) and isinstance(code, str):
                    out.append((system, code))
    return out


def state_diagnosis(meaning: str, system: str, code: str) -> str:
    """Return the state's diagnosis string for a terminology meaning (not 'unresolved')."""
    if meaning == "dermatomyositis" or meaning == "polymyositis":
        return meaning
    if meaning == "juvenile":
        return JUVENILE_DIAGNOSIS
    return IBM_DIAGNOSIS if (system, code) in IBM_CODES else OTHER_MYOSITIS_DIAGNOSIS


def rank(candidate: DiagnosisCandidate) -> tuple[bool, float, bool, int]:
    """Order myositis entries: dated before undated, by date, problem list first on a tie."""
    key = candidate.key
    return (key.dated, key.seconds, problem_list(candidate.resource), key.position)


def problem_list(res: dict[str, Any]) -> bool:
    """Return whether a Condition is a problem-list item."""
    categories = res.get("category")
    if not isinstance(categories, list):
        return False
    return any("problem-list-item" in coding_codes(c, CONDITION_CATEGORY) for c in categories)
