"""The patient-course timeline SVG: well-formed, accessible, faithful to the states it draws."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from myoguide.adapters.web.timeline import VisitPoint, timeline_svg
from myoguide.knowledge.loader import load_packaged

NS = "{http://www.w3.org/2000/svg}"
D = dt.date
MALICIOUS = '<script>alert("x")</script> & co'


def state(
    pred: float | str | None = None,
    *others: str,
    unit: str = "mg/day",
    flare: bool = False,
    history: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Return a patient state: pred None = off prednisone, "?" = on it with no dose recorded."""
    meds: list[dict[str, Any]] = []
    if pred == "?":
        meds.append({"agent": "prednisone"})
    elif pred is not None:
        meds.append({"agent": "prednisone", "dose": {"value": pred, "unit": unit}})
    meds += [{"agent": agent} for agent in others]
    return {
        "age_years": 50,
        "diagnosis": "dermatomyositis",
        "flare": flare,
        "current_medications": meds,
        "treatment_history": [{"agent": a, "outcome": o} for a, o in history],
    }


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}{tag}") if cls in (e.get("class") or "").split()]


def one(root: ET.Element, tag: str, cls: str) -> ET.Element:
    found = by_class(root, tag, cls)
    assert len(found) == 1, (tag, cls, len(found))
    return found[0]


def panel(root: ET.Element) -> ET.Element:
    return one(root, "g", "prednisone")


def pred_points(root: ET.Element) -> list[tuple[str, float, float]]:
    return path_points(one(panel(root), "path", "pred").get("d") or "")


def dots(root: ET.Element) -> list[ET.Element]:
    return by_class(panel(root), "circle", "dot")


def text_of(element: ET.Element) -> str:
    return "".join(element.itertext())


def path_points(d: str) -> list[tuple[str, float, float]]:
    """Return the dose points of a step line: ("M", x, y) starts a piece, ("L", x, y) a step."""
    steps = re.findall(r"M(-?[\d.]+),(-?[\d.]+)|H(-?[\d.]+)V(-?[\d.]+)", d)
    return [
        ("M", float(mx), float(my)) if mx else ("L", float(hx), float(vy))
        for mx, my, hx, vy in steps
    ]


def guide_x(root: ET.Element) -> dict[str, float]:
    """Return the x of each visit's guide line by ISO date."""
    out: dict[str, float] = {}
    for guide in by_class(root, "path", "guide"):
        match = re.match(r"M(-?[\d.]+),", guide.get("d") or "")
        assert match is not None
        out[guide.get("data-date") or ""] = float(match.group(1))
    return out


def course() -> list[VisitPoint]:
    """Return a twelve-visit course: MTX fails, AZA was not tolerated, rituximab responds."""
    aza = ("azathioprine", "intolerance")
    mtx = ("methotrexate", "inadequate_response")
    return [
        VisitPoint(D(2023, 1, 10), state(60, "methotrexate", history=[aza])),
        VisitPoint(D(2023, 2, 14), state(40, "methotrexate", history=[aza])),
        VisitPoint(D(2023, 4, 3), state(20, "methotrexate", history=[aza])),
        VisitPoint(
            D(2023, 6, 12),
            state(7.5, "methotrexate", flare=True, history=[aza]),
            "Prednisone 1 mg/kg/day",
            "accepted",
        ),
        VisitPoint(D(2023, 7, 10), state(50, "methotrexate", history=[aza]), "IVIG", "chose_other"),
        VisitPoint(D(2023, 9, 4), state(30, "mycophenolate_mofetil", history=[aza, mtx])),
        VisitPoint(D(2023, 11, 20), state("?", "mycophenolate_mofetil", history=[aza, mtx])),
        VisitPoint(
            D(2024, 1, 15),
            state(15, "mycophenolate_mofetil", flare=True, history=[aza, mtx]),
            "Rituximab",
            "accepted",
        ),
        VisitPoint(D(2024, 3, 4), state(20, "rituximab", history=[aza, mtx]), "Rituximab", None),
        VisitPoint(
            D(2024, 5, 20), state(10, "rituximab", history=[aza, mtx]), MALICIOUS, "declined"
        ),
        VisitPoint(D(2024, 8, 26), state(0.005, "rituximab", unit="g/day", history=[aza, mtx])),
        VisitPoint(
            D(2024, 12, 2),
            state(None, "rituximab", history=[aza, mtx, ("rituximab", "responded")]),
            "Continue rituximab",
            "accepted",
        ),
    ]


AGENT_NAMES = load_packaged().agent_ids


@pytest.fixture(scope="module")
def chart() -> ET.Element:
    return parse(timeline_svg(course()))


def test_root_is_an_accessible_image_with_title_and_description(chart: ET.Element) -> None:
    assert chart.get("role") == "img"
    title, desc = chart.find(f"{NS}title"), chart.find(f"{NS}desc")
    assert title is not None
    assert desc is not None
    assert next(iter(chart)) is title  # the accessible name comes first
    assert text_of(title) == "Treatment course: 12 visits, 10 Jan 2023 to 2 Dec 2024"
    words = text_of(desc)
    assert "Prednisone: 60 mg/day on 10 Jan 2023, 0 mg/day on 2 Dec 2024" in words
    assert "highest 60 mg/day" in words
    assert "Dose not recorded at 1 visit." in words
    assert "Flares: 2 (12 Jun 2023, 15 Jan 2024)." in words
    assert "Methotrexate 10 Jan 2023 to 10 Jul 2023, inadequate response" in words
    assert "Azathioprine (prior, intolerance)" in words
    assert "Rituximab 4 Mar 2024 to 2 Dec 2024, responded" in words
    assert "3 accepted, 1 chose another, 1 declined" in words
    labelled = (chart.get("aria-labelledby") or "").split()
    assert labelled == [title.get("id"), desc.get("id")]


def test_no_script_no_external_resources_only_an_embedded_style() -> None:
    svg = timeline_svg(course())
    root = parse(svg)
    tags = {e.tag.removeprefix(NS) for e in root.iter()}
    assert not tags & {"script", "foreignObject", "image", "use", "a"}
    assert "href" not in svg
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert " style=" not in svg
    styles = list(root.iter(f"{NS}style"))
    assert len(styles) == 1
    assert "currentColor" in text_of(styles[0])
    assert "stroke-dasharray" in text_of(styles[0])
    assert not re.search(r"#[0-9a-fA-F]{3,6}\b|rgb\(", svg)  # no hard-coded colours


def test_prednisone_path_has_a_point_per_known_dose_in_date_order(chart: ET.Element) -> None:
    points = pred_points(chart)
    assert len(points) == 11  # twelve visits, one dose not recorded
    xs = [x for _, x, _ in points]
    assert xs == sorted(set(xs))
    assert [c for c, _, _ in points].count("M") == 2  # the unknown dose breaks the line
    # A step line: each dose holds flat until the next visit, then the line steps (no ramps).
    d = one(panel(chart), "path", "pred").get("d") or ""
    assert re.fullmatch(r"(M-?[\d.]+,-?[\d.]+(H-?[\d.]+V-?[\d.]+)*)+", d), d
    ys = [y for _, _, y in points]
    assert ys[0] < ys[1] < ys[2] < ys[3]  # 60 > 40 > 20 > 7.5 mg/day: higher is up
    assert len(dots(chart)) == 11
    guides = guide_x(chart)
    assert len(guides) == 12
    assert xs[0] == pytest.approx(guides["2023-01-10"])


def test_y_axis_has_labelled_ticks(chart: ET.Element) -> None:
    panel = one(chart, "g", "prednisone")
    labels = [text_of(t) for t in panel.iter(f"{NS}text") if "e" in (t.get("class") or "").split()]
    assert labels == ["0", "20", "40", "60"]
    assert "Prednisone mg/day" in [text_of(t) for t in panel.iter(f"{NS}text")]


def test_gram_doses_are_converted_to_mg_per_day() -> None:
    in_mg = timeline_svg(
        [VisitPoint(D(2024, 1, 1), state(40)), VisitPoint(D(2024, 2, 1), state(5))]
    )
    in_g = timeline_svg(
        [
            VisitPoint(D(2024, 1, 1), state(0.04, unit="g/day")),
            VisitPoint(D(2024, 2, 1), state(35, unit="mg/week")),
        ]
    )
    assert pred_points(parse(in_mg)) == pred_points(parse(in_g))
    tips = [text_of(c) for c in dots(parse(in_g))]
    assert tips == ["1 Jan 2024: prednisone 40 mg/day", "1 Feb 2024: prednisone 5 mg/day"]


def test_unknown_dose_is_a_gap_and_absent_prednisone_is_zero() -> None:
    points = [
        VisitPoint(D(2024, 1, 1), state(20)),
        VisitPoint(D(2024, 2, 1), state("?")),
        VisitPoint(
            D(2024, 3, 1),
            {"current_medications": [{"agent": "prednisone", "dose": {"value": 5, "unit": "gr"}}]},
        ),
        VisitPoint(D(2024, 4, 1), state(10)),
        VisitPoint(D(2024, 5, 1), state(None, "methotrexate")),
        VisitPoint(D(2024, 6, 1), {"flare": False}),  # no medication list at all: unknown
    ]
    root = parse(timeline_svg(points))
    found = pred_points(root)
    assert [c for c, _, _ in found] == ["M", "M", "L"]
    first, off = found[0], found[2]
    assert off[2] > first[2]  # zero sits on the baseline, below 20 mg/day
    baseline = by_class(panel(root), "path", "ax")[0].get("d") or ""
    assert float(re.findall(r",(-?[\d.]+)H", baseline)[0]) == off[2]
    unknown = by_class(root, "g", "dose-unknown")
    assert len(unknown) == 3
    assert "dose not recorded" in text_of(unknown[0])
    tips = [text_of(c) for c in dots(root)]
    assert "1 May 2024: off prednisone (0 mg/day)" in tips


def test_flare_markers_are_a_symbol_and_a_word(chart: ET.Element) -> None:
    flares = by_class(chart, "g", "flare")
    assert [f.get("data-date") for f in flares] == ["2023-06-12", "2024-01-15"]
    for flare in flares:
        assert len(by_class(flare, "path", "flare-mark")) == 1
        assert len(by_class(flare, "path", "flare-line")) == 1
        assert "Flare" in text_of(flare)


def test_agent_bar_spans_its_visits_with_its_outcome(chart: ET.Element) -> None:
    guides = guide_x(chart)
    agents = {g.get("data-agent"): g for g in by_class(chart, "g", "agent")}
    assert list(agents) == ["methotrexate", "azathioprine", "mycophenolate_mofetil", "rituximab"]
    mtx = agents["methotrexate"]
    assert (mtx.get("data-from"), mtx.get("data-to")) == ("2023-01-10", "2023-07-10")
    bar = one(mtx, "rect", "bar")
    left = float(bar.get("x") or 0)
    right = left + float(bar.get("width") or 0)
    assert left < guides["2023-01-10"] < guides["2023-07-10"] < right
    assert right < guides["2023-09-04"]
    assert text_of(one(mtx, "text", "outcome")) == "inadequate response"
    assert "Methotrexate" in text_of(mtx)
    pattern = re.fullmatch(r"url\(#(.+)\)", bar.get("fill") or "")
    assert pattern is not None
    ids = {p.get("id") for p in chart.iter(f"{NS}pattern")}
    assert pattern.group(1) in ids
    rtx = agents["rituximab"]
    assert text_of(one(rtx, "text", "outcome")) == "responded"
    assert "solid" in (one(rtx, "rect", "bar").get("class") or "")


def test_agent_only_in_history_is_a_short_prior_marker(chart: ET.Element) -> None:
    aza = next(g for g in by_class(chart, "g", "agent") if g.get("data-agent") == "azathioprine")
    assert aza.get("data-from") == aza.get("data-to") == "2023-01-10"
    bar = one(aza, "rect", "prior")
    assert float(bar.get("width") or 0) <= 20
    assert text_of(one(aza, "text", "outcome")) == "prior: intolerance"


def test_decision_glyphs_and_recommendation_labels(chart: ET.Element) -> None:
    visits = by_class(chart, "g", "visit")
    assert len(visits) == 12
    glyphs = {
        v.get("data-date"): "".join(text_of(g) for g in by_class(v, "text", "glyph"))
        for v in visits
    }
    assert [glyphs[d] for d in ("2023-06-12", "2023-07-10", "2024-05-20", "2024-12-02")] == [
        "✓",
        "↺",
        "✕",
        "✓",
    ]
    tips = [text_of(v.find(f"{NS}title")) for v in visits]  # type: ignore[arg-type]
    assert "10 Jul 2023: IVIG — chose another" in tips
    assert f"20 May 2024: {MALICIOUS} — declined" in tips
    assert "4 Mar 2024: Rituximab — no decision recorded" in tips
    assert "10 Jan 2023: no option shown — no decision recorded" in tips
    names = [text_of(t) for t in by_class(chart, "text", "rec")]
    # Rituximab at two visits in a row is named once, under a rule joining its glyphs.
    assert names == ["Prednisone 1 mg/kg/day", "IVIG", "Rituximab", MALICIOUS, "Continue rituximab"]
    assert len(by_class(chart, "path", "run")) == 1


def test_user_text_is_escaped() -> None:
    evil = VisitPoint(
        D(2024, 1, 1),
        {"current_medications": [{"agent": "<img src=x onerror=alert(1)>"}], "flare": True},
        MALICIOUS + "\x00\x1b\ud800",
        "accepted",
    )
    svg = timeline_svg([evil])
    root = parse(svg)
    assert "<script" not in svg
    assert "<img" not in svg
    assert "&lt;script&gt;" in svg
    assert "&amp; co" in svg
    assert MALICIOUS in text_of(one(root, "text", "rec"))
    agents = by_class(root, "g", "agent")
    assert agents[0].get("data-agent") == "<img src=x onerror=alert(1)>"


def test_empty_input_says_no_visits_yet() -> None:
    root = parse(timeline_svg([]))
    assert root.get("role") == "img"
    assert "No visits yet" in text_of(root)
    assert float(root.get("height") or 0) < 100


def test_single_visit_is_centred_with_its_full_date() -> None:
    root = parse(timeline_svg([VisitPoint(D(2024, 3, 5), state(20, "ivig"), "IVIG", "accepted")]))
    (point,) = pred_points(root)
    assert point[0] == "M"
    axis = one(root, "g", "date-axis")
    # Centred on the date axis (which leaves room on the right for the words ending the bars).
    line = next(p.get("d") or "" for p in axis.iter(f"{NS}path"))
    match = re.fullmatch(r"M([\d.]+),[\d.]+H([\d.]+)", line)
    assert match is not None, line
    assert point[1] == pytest.approx((float(match.group(1)) + float(match.group(2))) / 2, abs=0.1)
    assert [text_of(t) for t in axis.iter(f"{NS}text")] == ["5 Mar 2024"]
    assert text_of(root.find(f"{NS}title")) == "Treatment course: 1 visit on 5 Mar 2024"  # type: ignore[arg-type]


def test_same_day_visits_keep_their_glyphs_apart() -> None:
    day = D(2024, 3, 5)
    points = [
        VisitPoint(day, state(20), "IVIG", "declined"),
        VisitPoint(day, state(25, flare=True), "Rituximab", "chose_other"),
        VisitPoint(day, state(30), "Tacrolimus", "accepted"),
    ]
    root = parse(timeline_svg(points))
    options = one(root, "g", "recommendations")
    xs = [float(g.get("x") or 0) for g in by_class(options, "text", "glyph")]
    assert len(xs) == 3
    assert all(b - a >= 14 for a, b in itertools.pairwise(xs))
    assert [text_of(t) for t in one(root, "g", "date-axis").iter(f"{NS}text")] == ["5 Mar 2024"]
    assert len(by_class(root, "text", "rec")) == 3


@pytest.mark.parametrize(
    ("start", "days", "expect"),
    [
        (D(2024, 3, 1), 7, re.compile(r"^\d{1,2} Mar$")),
        (D(2024, 3, 1), 150, re.compile(r"^(Mar|Apr|May|Jun|Jul|Aug)$")),
        (D(2014, 1, 1), 3650, re.compile(r"^20\d\d$")),
    ],
)
def test_date_axis_ticks_suit_the_span(start: dt.date, days: int, expect: re.Pattern[str]) -> None:
    points = [VisitPoint(start, state(10)), VisitPoint(start + dt.timedelta(days=days), state(5))]
    root = parse(timeline_svg(points))
    axis = one(root, "g", "date-axis")
    labels = [text_of(t) for t in axis.iter(f"{NS}text") if "h" not in (t.get("class") or "")]
    assert 2 <= len(labels) <= 12
    assert all(expect.match(label) for label in labels), labels
    paths = [p.get("d") or "" for p in axis.iter(f"{NS}path")][1:]
    ticks = [float(re.findall(r"M([\d.]+),", d)[0]) for d in paths]
    assert len(ticks) == len(labels)
    assert ticks == sorted(ticks)


def test_output_is_deterministic_and_ids_differ_between_charts() -> None:
    first, again = timeline_svg(course()), timeline_svg(course())
    assert first == again
    other = timeline_svg(course()[:5])
    id_of = re.compile(r'<title id="([^"]+)"')
    assert id_of.findall(first) != id_of.findall(other)
    assert len(id_of.findall(first)) == 1


def test_input_order_does_not_matter_and_labels_come_from_the_caller() -> None:
    points = course()
    assert timeline_svg(list(reversed(points))) == timeline_svg(points)
    one = [
        VisitPoint(
            D(2024, 1, 1),
            {
                "current_medications": [
                    {"agent": "prednisone", "dose": {"value": 40, "unit": "mg/day"}},
                    {"agent": "rituximab"},
                ]
            },
        )
    ]
    root = parse(timeline_svg(one, labels={"rituximab": "Rituximab (anti-CD20)"}))
    assert [g.get("data-agent") for g in by_class(root, "g", "agent")] == ["rituximab"]
    assert "Rituximab (anti-CD20)" in ET.tostring(root, encoding="unicode")
    assert "40 mg/day" in text_of(dots(root)[0])


def test_width_is_honoured_and_narrow_widths_stay_legible() -> None:
    root = parse(timeline_svg(course(), width=640))
    assert root.get("width") == "640"
    assert (root.get("viewBox") or "").startswith("0 0 640 ")
    assert parse(timeline_svg(course(), width=100)).get("width") == "480"


def test_twenty_visits_render_in_well_under_five_ms() -> None:
    points = [
        VisitPoint(
            D(2022, 1, 1) + dt.timedelta(days=30 * i),
            state(60 - 2 * i, "methotrexate" if i < 10 else "rituximab", flare=i % 5 == 0),
            "Rituximab",
            "accepted",
        )
        for i in range(20)
    ]
    timeline_svg(points)
    best = min(_timed(points) for _ in range(5))
    assert best < 0.005


def _timed(points: Sequence[VisitPoint]) -> float:
    start = time.perf_counter()
    timeline_svg(points)
    return time.perf_counter() - start


units = st.sampled_from(["mg/day", "mg/week", "g/day", "g/week", "furlongs", ""])
doses = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "value": st.one_of(st.floats(allow_nan=True), st.integers(-5, 10**6), st.text()),
            "unit": units,
        }
    ),
)
medication = st.builds(
    lambda agent, dose: {"agent": agent} if dose is None else {"agent": agent, "dose": dose},
    st.one_of(st.sampled_from(AGENT_NAMES), st.text(max_size=12)),
    doses,
)
history_entry = st.fixed_dictionaries(
    {
        "agent": st.sampled_from(AGENT_NAMES),
        "outcome": st.sampled_from(["inadequate_response", "intolerance", "responded", "unknown"]),
    }
)
states = st.fixed_dictionaries(
    {},
    optional={
        "flare": st.one_of(st.booleans(), st.none()),
        "current_medications": st.lists(medication, max_size=5),
        "treatment_history": st.lists(history_entry, max_size=5),
    },
)
visit_points = st.builds(
    VisitPoint,
    st.dates(min_value=D(1950, 1, 1), max_value=D(2100, 12, 31)),
    states,
    st.one_of(st.none(), st.text(max_size=40)),
    st.sampled_from([None, "accepted", "chose_other", "declined", "maybe"]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(visit_points, max_size=25), st.integers(200, 1600))
def test_any_course_gives_well_formed_xml(points: list[VisitPoint], width: int) -> None:
    svg = timeline_svg(points, width=width)
    root = parse(svg)
    assert root.get("role") == "img"
    assert root.find(f"{NS}title") is not None
    assert root.find(f"{NS}desc") is not None
    if points:
        assert len(by_class(root, "g", "visit")) == len(points)
        flares = sum(1 for p in points if p.state.get("flare") is True)
        assert len(by_class(root, "g", "flare")) == flares
    assert svg == timeline_svg(list(points), width=width)


@settings(max_examples=50, deadline=None)
@given(
    st.dates(min_value=D(1, 1, 1), max_value=D(9999, 12, 31)),
    st.dates(min_value=D(1, 1, 1), max_value=D(9999, 12, 31)),
)
def test_extreme_dates_do_not_break_the_axis(a: dt.date, b: dt.date) -> None:
    parse(timeline_svg([VisitPoint(a, state(10)), VisitPoint(b, state(5))]))


def test_agent_taken_again_after_a_gap_is_two_bars_joined_by_a_dotted_rule() -> None:
    points = [
        VisitPoint(D(2024, 1, 1), state(20, "methotrexate")),
        VisitPoint(D(2024, 3, 1), state(15)),
        VisitPoint(D(2024, 5, 1), state(10, "methotrexate")),
    ]
    root = parse(timeline_svg(points))
    mtx = next(g for g in by_class(root, "g", "agent") if g.get("data-agent") == "methotrexate")
    bars = by_class(mtx, "rect", "bar")
    assert len(bars) == 2
    assert mtx.get("data-runs") == "2"
    gap = one(mtx, "path", "gap")
    first_end = float(bars[0].get("x") or 0) + float(bars[0].get("width") or 0)
    assert (gap.get("d") or "").startswith(f"M{first_end:g}")
    assert text_of(one(mtx, "text", "outcome")) == "ongoing"
    title = text_of(mtx.find(f"{NS}title"))  # type: ignore[arg-type]
    assert "1 Jan 2024" in title
    assert "1 May 2024" in title


def test_page_style_can_be_linked_instead_of_embedded() -> None:
    svg = timeline_svg(course(), embed_style=False)
    assert "<style" not in svg
    parse(svg)
