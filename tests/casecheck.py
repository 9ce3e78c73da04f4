"""Checks a RecommendationSet (as JSON data) against a case file's `expect` block.

The keys are those of shared/spec/examples/README.md, plus a few of our own for vignettes.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_EXAMPLES = ROOT.parent / "shared" / "spec" / "examples"
VIGNETTES = ROOT / "tests" / "vignettes"
TO_MG = {"mg": 1.0, "g": 1000.0}


def load_cases(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """Return (name, case) for every JSON case file in a folder, sorted by name."""
    return [(p.stem, json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]


def _recs_with(result: dict[str, Any], agent: str) -> list[dict[str, Any]]:
    return [r for r in result["recommendations"] if any(a["agent"] == agent for a in r["agents"])]


def _within(actual: float, expected: float) -> bool:
    return abs(actual - expected) <= 0.05 * abs(expected)


def _dose_matches(dose: dict[str, Any] | None, want: dict[str, Any]) -> bool:
    if dose is None or dose["period"] != want["period"]:
        return False
    factor = TO_MG[dose["unit"]]
    for bound in ("low", "high"):
        key = f"{bound}_mg"
        if key not in want:
            continue
        if want[key] is None or dose[bound] is None:
            # A null bound is a limit ("up to" has no low, "at least" no high).
            if want[key] is not None or dose[bound] is not None:
                return False
        elif not _within(dose[bound] * factor, want[key]):
            return False
    if "qualifier" in want and dose.get("qualifier") != want["qualifier"]:
        return False
    return "timing" not in want or dose.get("timing") == want["timing"]


def check(result: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    """Return the list of unmet expectations (empty when the answer meets them all)."""
    bad: list[str] = []
    recs = result["recommendations"]
    for key in ("course", "scenario", "flare_scenario"):
        if key in expect and result[key] != expect[key]:
            bad.append(f"{key}: {result[key]!r} != {expect[key]!r}")
    if "rank1_agents_any" in expect:
        rank1 = {a["agent"] for r in recs if r["rank"] == 1 for a in r["agents"]}
        if not rank1 & set(expect["rank1_agents_any"]):
            bad.append(f"rank1 agents {sorted(rank1)} miss {expect['rank1_agents_any']}")
    for agent in expect.get("agents_present", []):
        if not any(r["stance"] != "not_suggested" for r in _recs_with(result, agent)):
            bad.append(f"agent {agent} not present")
    for agent in expect.get("agents_absent", []):
        if any(r["stance"] in ("recommended", "alternative") for r in _recs_with(result, agent)):
            bad.append(f"agent {agent} present but should be absent")
    if "order" in expect:
        best = [
            min((r["rank"] for r in _recs_with(result, a)), default=None) for a in expect["order"]
        ]
        if None in best or any(x >= y for x, y in itertools.pairwise(best)):
            bad.append(f"order {expect['order']} not met: ranks {best}")
    for agent, grade in expect.get("grades", {}).items():
        found = _recs_with(result, agent)
        if not found or min(found, key=lambda r: r["rank"])["grade"] != grade:
            bad.append(f"grade of {agent} is not {grade}")
    for want in expect.get("doses", []):
        doses = [a.get("dose") for r in recs for a in r["agents"] if a["agent"] == want["agent"]]
        if not any(_dose_matches(d, want) for d in doses):
            bad.append(f"no dose for {want['agent']} matching {want}: {doses}")
    for want in expect.get("regimen_doses", []):
        doses = [
            g.get("dose")
            for r in recs
            for a in r["agents"]
            for g in a.get("regimens", [])
            if g["id"] == want["regimen"]
        ]
        if not any(_dose_matches(d, want) for d in doses):
            bad.append(f"no regimen dose {want}: {doses}")
    if expect.get("warnings_nonempty") and not result["warnings"]:
        bad.append("expected warnings")
    if expect.get("no_recommendations") and recs:
        bad.append(f"expected no recommendations, got {[r['id'] for r in recs]}")
    codes = {w["code"] for w in result["warnings"]}
    for code in expect.get("warning_codes", []):
        if code not in codes:
            bad.append(f"warning {code} missing (have {sorted(codes)})")
    for code in expect.get("warning_codes_absent", []):
        if code in codes:
            bad.append(f"warning {code} should be absent")
    ids = [r["id"] for r in recs]
    if "recommendation_ids" in expect and ids != expect["recommendation_ids"]:
        bad.append(f"recommendation ids {ids} != {expect['recommendation_ids']}")
    for rid in expect.get("ids_present", []):
        if rid not in ids:
            bad.append(f"recommendation {rid} missing")
    for rid in expect.get("ids_absent", []):
        if rid in ids:
            bad.append(f"recommendation {rid} should be absent")
    by_id = {r["id"]: r for r in recs}
    for rid, rank in expect.get("ranks", {}).items():
        if rid not in by_id or by_id[rid]["rank"] != rank:
            bad.append(f"rank of {rid} is not {rank}")
    for rid, stance in expect.get("stances", {}).items():
        if rid not in by_id or by_id[rid]["stance"] != stance:
            bad.append(f"stance of {rid} is not {stance}")
    for rid, agents in expect.get("rec_agents", {}).items():
        got = [a["agent"] for a in by_id.get(rid, {"agents": []})["agents"]]
        if got != agents:
            bad.append(f"agents of {rid} {got} != {agents}")
    for rid, agents in expect.get("choose_one", {}).items():
        got = by_id.get(rid, {}).get("choose_one")
        if got != agents:
            bad.append(f"choose_one of {rid} {got} != {agents}")
    for rid, texts in expect.get("cautions_contain", {}).items():
        cautions = " ".join(by_id.get(rid, {"cautions": []})["cautions"])
        bad.extend(f"caution of {rid} lacks {t!r}" for t in texts if t not in cautions)
    for rid, texts in expect.get("cautions_lack", {}).items():
        cautions = " ".join(by_id.get(rid, {"cautions": []})["cautions"])
        bad.extend(f"caution of {rid} still says {t!r}" for t in texts if t in cautions)
    for text in expect.get("basis_contains", []):
        bases = [
            g["dose"]["basis"]
            for r in recs
            for a in r["agents"]
            for g in a.get("regimens", [])
            if g.get("dose")
        ]
        if not any(text in b for b in bases):
            bad.append(f"no dose basis contains {text!r}")
    for rid, texts in expect.get("text_contains", {}).items():
        text = by_id.get(rid, {"text": ""})["text"]
        bad.extend(f"text of {rid} lacks {t!r}" for t in texts if t not in text)
    for rid, words in expect.get("grade_meaning_contains", {}).items():
        meaning = by_id.get(rid, {}).get("grade_meaning") or ""
        if words not in meaning:
            bad.append(f"grade meaning of {rid} lacks {words!r}: {meaning!r}")
    for rid, parent in expect.get("under", {}).items():
        if rid not in by_id or by_id[rid].get("under") != parent:
            bad.append(f"{rid} is not folded under {parent}")
    for rid in expect.get("after_set", []):
        if rid not in by_id or not by_id[rid].get("after"):
            bad.append(f"{rid} does not say what must come first")
    if expect.get("none_recommended_after"):
        early = [r["id"] for r in recs if r.get("after") and r["stance"] == "recommended"]
        if early:
            bad.append(f"recommended before what must come first: {early}")
    for agent in expect.get("no_continue_dose", []):
        # A course agent in use is never "continue" with a dose put forward as an order.
        if any(
            a["agent"] == agent and (a.get("action") == "continue" or a.get("dose"))
            for _, a in [(r, a) for r in recs for a in r["agents"]]
        ):
            bad.append(f"{agent} is put forward as 'continue' or with a dose")
    for text in expect.get("warnings_contain", []):
        if not any(text in w["message"] for w in result["warnings"]):
            bad.append(f"no warning says {text!r}")
    options = [(r, a) for r in recs for a in r["agents"]]
    for agent, action in expect.get("actions", {}).items():
        got = sorted({a.get("action") or "" for _, a in options if a["agent"] == agent})
        if action not in got:
            bad.append(f"no {agent} with action {action!r} (have {got})")
    for agent, action in expect.get("actions_absent", {}).items():
        if any(a["agent"] == agent and a.get("action") == action for _, a in options):
            bad.append(f"{agent} should never have action {action!r}")
    for agent in expect.get("in_use", []):
        if not any(a["agent"] == agent and a.get("in_use") for _, a in options):
            bad.append(f"{agent} not marked as already in use")
    return bad
