"""The encoded guideline: complete, cited, in our own words, and validated fail-closed."""

from __future__ import annotations

import re

import msgspec
import pytest

from casecheck import ROOT
from myoguide.errors import KnowledgeError
from myoguide.knowledge.loader import load_packaged, parse_knowledge
from myoguide.knowledge.model import Knowledge
from myoguide.knowledge.terminology import load_packaged_terminology

SEEDS = ROOT.parent / "shared" / "seeds"
YAML = ROOT / "src" / "myoguide" / "knowledge" / "data" / "guideline.yaml"
KB: Knowledge = load_packaged()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _clinical_texts(k: Knowledge) -> list[tuple[str, str]]:
    out = [(f"recommendations.{i}", r.text) for i, r in k.recommendations.items()]
    out += [(f"cautions.{i}", c.text) for i, c in k.cautions.items()]
    out += [(f"scenarios.{i}", f"{s.title}. {s.summary}") for i, s in k.scenarios.items()]
    out += [(f"warnings.{i}", w.text) for i, w in k.warnings.items()]
    out += [(f"dose_rules.{i}", r.note) for i, r in k.dose_rules.items()]
    out += [(f"ladder[{s.step}]", s.note) for s in k.ladder]
    out += [(f"literature_only.{i.id}", i.text) for i in k.literature_only]
    return out


def test_version_and_disclaimer() -> None:
    assert re.fullmatch(r"\d{4}\.\d{1,2}\.\d+", KB.knowledge_version)
    assert "not replace" in KB.disclaimer


def test_every_item_is_cited() -> None:
    for rid, rec in KB.recommendations.items():
        assert rec.sources, rid
    for group in (KB.cautions, KB.scenarios, KB.dose_rules):
        for key, item in group.items():
            assert item.sources, key
    for m in KB.maxima:
        assert m.sources
    # Warnings about missing or unusual measurements are the tool's own input checks, and an
    # unusual dose carries the sources of its limit; all others are cited.
    uncited = {k for k, w in KB.warnings.items() if not w.sources}
    assert uncited == {"no_weight", "no_height", "weight_unusual", "bmi_unusual", "dose_unusual"}
    for agent, limit in KB.input_limits.doses.items():
        assert limit.warn_above is None or limit.sources, agent


def test_references_match_the_source_list() -> None:
    text = (SEEDS / "000_8f18884a0f5d84cd.txt").read_text()
    listed = dict(re.findall(r"^\s+(\d+)\. (.+)$", text, flags=re.M))
    assert len(KB.references) == 31 == len(listed)
    for ref in KB.references:
        assert _words(ref.citation) == _words(listed[str(ref.number)]), ref.number


def test_outside_material_is_marked() -> None:
    outside = {c.id for c in KB.citations if c.outside_source}
    assert outside == {"etg-rheumatology-prednisolone", "who-bmi-obesity"}
    used = {c for w in KB.warnings.values() for s in w.sources for c in s.citations}
    assert outside <= used


@pytest.mark.parametrize(
    ("rec_id", "grade"),
    [
        ("r1_add_sparing_agent", "2C"),
        ("r1_manage_as_resistant", "2C"),
        ("r2_raise_prednisone", "2C"),
        ("r2_raise_azathioprine", "2C"),
        ("r2_raise_methotrexate", "2C"),
        ("r3_restart_prednisone", "2C"),
        ("r3_switch_to_methotrexate", "2C"),
        ("r4_restart_prednisone", "2C"),
        ("r4_sparing_agent", "2C"),
        ("resistant_ivig", "2B"),
        ("ild_tacrolimus", "2C"),
        ("resistant_alkylating", "1C"),
        ("resistant_tnf", "2C"),
        ("resistant_rituximab", None),
        ("resistant_mycophenolate", None),
        ("resistant_ivig_pm", None),
    ],
)
def test_grades_as_the_guideline_states(rec_id: str, grade: str | None) -> None:
    assert KB.recommendations[rec_id].grade == grade


def test_ladder_order_and_stances() -> None:
    order = [rid for step in KB.ladder for rid in step.recommendations]
    assert order == [
        "resistant_rituximab",
        "resistant_ivig",
        "resistant_mycophenolate",
        "resistant_tacrolimus",  # before cyclosporine: limited evidence favours it
        "resistant_cyclosporine",
        "resistant_aza_mtx_combination",
        "resistant_alkylating",
        "resistant_tnf",
    ]
    stances = {rid: KB.recommendations[rid].stance for rid in order}
    assert stances["resistant_rituximab"] == "recommended"
    assert stances["resistant_alkylating"] == "reserved"
    assert stances["resistant_tnf"] == "not_suggested"


def test_stated_maxima() -> None:
    got = {(m.agent, int(m.amount), m.unit, m.period) for m in KB.maxima}
    assert got == {("azathioprine", 200, "mg", "day"), ("methotrexate", 25, "mg", "week")}


def test_literature_only_agents_never_recommended() -> None:
    assert [i.sources[0].references for i in KB.literature_only] == [(13,), (29,), (30,), (31,)]
    offered = {a.agent for r in KB.recommendations.values() for a in r.agents}
    assert not offered & {"ruxolitinib", "acth_gel", "subcutaneous_immunoglobulin"}


def test_no_sentence_copied_from_the_sources() -> None:
    seeds = " | ".join(" ".join(_words(p.read_text())) for p in sorted(SEEDS.glob("*.txt")))
    seeds_padded = f" {seeds} "
    copied = []
    for key, text in _clinical_texts(KB):
        words = _words(text)
        for i in range(len(words) - 7):
            run = " ".join(words[i : i + 8])
            if f" {run} " in seeds_padded:
                copied.append(f"{key}: '{run}'")
    assert copied == []


def _mutated(old: str, new: str) -> str:
    text = YAML.read_text()
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("    grade: 2B\n", "    grade: 3Z\n", "recommendations.resistant_ivig.grade"),
        ('knowledge_version: "2026', 'knowledge_version: "v2026', "knowledge_version"),
        (
            "    cautions: [mycophenolate_infection]",
            "    cautions: [no_such_caution]",
            "recommendations.resistant_mycophenolate",
        ),
        (
            "references: [26, 27, 28]}]\n  resistant_tnf",
            "references: [26, 27, 99]}]\n  resistant_tnf",
            "sources[0]",
        ),
        (
            "  - id: azathioprine_max\n    agent: azathioprine\n    amount: 200\n",
            "  - id: azathioprine_max\n    agent: azathioprine\n",
            "maxima[0]",
        ),
        (
            "    policy: {level: note, card: false, scope: clinical}",
            "    policy: {level: note, card: true, scope: clinical}",
            "warnings.prednisone_at_boundary.policy",
        ),
        (
            "    policy: {level: stop, card: false, scope: not_myositis}",
            "    policy: {level: check, card: false, scope: not_myositis}",
            "warnings.out_of_scope_diagnosis.policy",
        ),
        (
            "    policy: {level: check, card: true, scope: clinical}",
            "    policy: {level: urgent, card: true, scope: clinical}",
            "warnings.dose_clamped.policy.level",
        ),
    ],
)
def test_bad_knowledge_fails_closed_naming_file_and_key(old: str, new: str, key: str) -> None:
    with pytest.raises(KnowledgeError) as err:
        parse_knowledge(_mutated(old, new), origin="guideline.yaml")
    assert err.value.file == "guideline.yaml"
    assert key in err.value.key or key in str(err.value), str(err.value)


def test_reference_out_of_range_is_named() -> None:
    bad = _mutated(
        'section: "Rituximab", references: [2, 3, 4, 5, 6, 7, 8, 9]}]\n  rituximab_1g',
        'section: "Rituximab", references: [99]}]\n  rituximab_1g',
    )
    with pytest.raises(KnowledgeError, match=r"reference 99 is not in the list"):
        parse_knowledge(bad, origin="g.yaml")


def test_yaml_syntax_error_is_named() -> None:
    with pytest.raises(KnowledgeError, match=r"\(yaml\)"):
        parse_knowledge("a: [unclosed", origin="g.yaml")


def test_renamed_recommendation_fails_at_load_naming_the_wiring_key() -> None:
    text = _mutated("  r1_add_sparing_agent:\n", "  r1_add_a_sparing_agent:\n")
    with pytest.raises(KnowledgeError) as err:
        parse_knowledge(text, origin="guideline.yaml")
    assert err.value.file == "guideline.yaml"
    assert err.value.key == "wiring.flare_above_10mg.add_sparing_agent"


def test_missing_wiring_slot_fails_at_load() -> None:
    text = _mutated("  ild_refractory: ild_tacrolimus\n", "")
    with pytest.raises(KnowledgeError) as err:
        parse_knowledge(text, origin="guideline.yaml")
    assert err.value.key.startswith("wiring")


def test_engine_refuses_knowledge_without_a_warning_it_emits() -> None:
    from myoguide.domain.engine import Engine

    kb = load_packaged()
    warnings = {k: v for k, v in kb.warnings.items() if k != "both_sparing_failed"}
    broken = msgspec.structs.replace(kb, warnings=warnings)
    with pytest.raises(KnowledgeError) as err:
        Engine(broken, load_packaged_terminology())
    assert err.value.key == "warnings.both_sparing_failed"
    assert err.value.file.endswith("guideline.yaml")


def test_course_agents_of_the_fhir_mapping_are_those_of_the_knowledge() -> None:
    from myoguide.adapters.fhir.courses import COURSE_AGENTS

    assert {a.id for a in KB.agents if a.given_as_course} == COURSE_AGENTS
