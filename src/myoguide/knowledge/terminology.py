"""The terminology table (terminology.yaml): typed, validated at load, with lookups."""

import re
from _thread import allocate_lock
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from myoguide.errors import KnowledgeError
from myoguide.knowledge.cache import cached, cached_payload, read_packaged
from myoguide.knowledge.drug_words import FORM_WORDS, SALTS, TOPICAL_WORDS
from myoguide.knowledge.model import Knowledge

if TYPE_CHECKING:
    from pathlib import Path

    from myoguide.knowledge.cache import Folder

PACKAGED_FILE = "terminology.yaml"
Meaning = Literal["dermatomyositis", "polymyositis", "juvenile", "other_myositis", "unresolved"]
NonEmpty = Annotated[str, Meta(min_length=1)]
Digits = Annotated[str, Meta(pattern=r"^[0-9]{1,12}$")]
Positive = Annotated[float, Meta(gt=0)]


class Amount(Struct, frozen=True, forbid_unknown_fields=True):
    """An amount of ingredient: value and mass unit."""

    value: Positive
    unit: Literal["mg", "g"]


class Ingredient(Struct, frozen=True, forbid_unknown_fields=True):
    """An RxNorm ingredient (IN) code."""

    code: Digits
    tty: Literal["IN"]
    display: NonEmpty
    source: NonEmpty


class Product(Struct, frozen=True, forbid_unknown_fields=True):
    """An RxNorm clinical (SCD) or branded (SBD) drug: strength per unit of a dose form."""

    code: Digits
    tty: Literal["SCD", "SBD"]
    display: NonEmpty
    form: NonEmpty
    amount: Amount
    per: NonEmpty
    source: NonEmpty
    brand: str | None = None


class Agent(Struct, frozen=True, forbid_unknown_fields=True):
    """One guideline agent: its codes and the names a record may use for it."""

    id: NonEmpty
    ingredient: Ingredient | None
    products: tuple[Product, ...]
    brand_names: tuple[NonEmpty, ...]
    synonyms: tuple[NonEmpty, ...]


class Diagnosis(Struct, frozen=True, forbid_unknown_fields=True):
    """A diagnosis code, what it means for scope, and whether it states lung involvement."""

    system: NonEmpty
    code: NonEmpty
    display: NonEmpty
    meaning: Meaning
    source: NonEmpty
    lung_involvement: bool = False
    note: str = ""


class ObservationCode(Struct, frozen=True, forbid_unknown_fields=True):
    """A LOINC code for body weight or height."""

    system: NonEmpty
    code: NonEmpty
    display: NonEmpty
    source: NonEmpty


class Observations(Struct, frozen=True, forbid_unknown_fields=True):
    """The observation codes read as body weight and body height."""

    body_weight: Annotated[tuple[ObservationCode, ...], Meta(min_length=1)]
    body_height: Annotated[tuple[ObservationCode, ...], Meta(min_length=1)]


class UnitSpelling(Struct, frozen=True, forbid_unknown_fields=True):
    """A UCUM unit and the spellings records use for it."""

    ucum: NonEmpty
    display: NonEmpty
    spellings: Annotated[tuple[NonEmpty, ...], Meta(min_length=1)]


class Units(Struct, frozen=True, forbid_unknown_fields=True):
    """Unit spellings and where the UCUM symbols come from."""

    source: NonEmpty
    to_ucum: tuple[UnitSpelling, ...]


class TimingCode(Struct, frozen=True, forbid_unknown_fields=True):
    """A Timing.code abbreviation and the schedule it stands for."""

    code: NonEmpty
    display: NonEmpty
    frequency: Annotated[int, Meta(ge=1)]
    period: Positive
    period_unit: Literal["h", "d", "wk"]


class Timing(Struct, frozen=True, forbid_unknown_fields=True):
    """The Timing.code system the mapping reads, with its codes."""

    system: NonEmpty
    source: NonEmpty
    codes: tuple[TimingCode, ...]


class NotVerified(Struct, frozen=True, forbid_unknown_fields=True):
    """A code that was looked for and could not be confirmed: documented, never used."""

    system: NonEmpty
    code: str | None
    claimed: NonEmpty
    finding: NonEmpty


class TerminologyFile(Struct, frozen=True, forbid_unknown_fields=True):
    """The whole file as written."""

    terminology_version: NonEmpty
    systems: dict[str, str]
    diagnosis_meanings: tuple[Meaning, ...]
    diagnoses: tuple[Diagnosis, ...]
    agents: tuple[Agent, ...]
    observations: Observations
    units: Units
    timing: Timing
    not_verified: tuple[NotVerified, ...] = ()


class _Products(Struct, frozen=True):
    """The part of a cached TerminologyFile the engine needs: its version and agents' codes."""

    terminology_version: NonEmpty
    agents: tuple[Agent, ...]


# Structs rather than NamedTuples: a NamedTuple class costs about five times as much to define
# (issue 24: command start); both are only read by attribute.
class CodedAgent(Struct, frozen=True):
    """The agent an RxNorm code names, and the product (with strength) when it is one."""

    agent: str
    product: Product | None


class NameMatch(Struct, frozen=True):
    """What a drug name says: 'agent' (one agent, nothing else), 'topical' (an agent in a form
    for the skin or eye), 'resembles' (the agent's name and other words), 'near' (only a similar
    spelling) or 'unrelated'."""

    kind: Literal["agent", "resembles", "near", "topical", "unrelated"]
    agents: tuple[str, ...]


# Name lookups are cached per table; a chart repeats the same few hundred names.
_NAME_CACHE_SIZE = 4096
# Compiled on first use (re caches them): only the name index and a failing parse read them, and
# an answer to a plain patient state needs neither (issue 24: command start).
_TOKEN = r"[a-z0-9]+(?:\.[0-9]+)?"
_JOINED = r"([a-z])-([0-9])"
_STRENGTH = r"[0-9][0-9.]*[a-z]*"
_AT = r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$"
_AGENT_INDEX = r"^agents\[(\d+)\]"


@cache
def _name_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """Return the compiled token, joined-strength and strength patterns of drug names."""
    return re.compile(_TOKEN), re.compile(_JOINED), re.compile(_STRENGTH)


def name_tokens(text: str) -> tuple[str, ...]:
    """Return a drug name as lower-case word tokens, strengths and salt words left out."""
    token, joined, strength = _name_patterns()
    lowered = joined.sub(r"\1\2", text.lower())
    return tuple(t for t in token.findall(lowered) if not strength.fullmatch(t) and t not in SALTS)


def _longest_common(a: str, b: str) -> int:
    """Return the length of the longest common substring of two words."""
    import difflib  # here: only a name that needs a near match loads it

    match = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match()
    return match.size


def _similar(token: str, word: str) -> bool:
    """Return whether two words share a long run of letters or are spelled alike."""
    import difflib

    matcher = difflib.SequenceMatcher(None, token, word, autojunk=False)
    if matcher.real_quick_ratio() < 0.8 and min(len(token), len(word)) < 6:
        return False
    return _longest_common(token, word) >= 6 or matcher.ratio() >= 0.8


# Held while a terminology from the cache builds its indexes (`_thread`: the command's start
# imports no `threading`).
_BUILDING = allocate_lock()


class Terminology:
    """The loaded table and its indexes, built once (from the cache: see `from_cache`)."""

    __slots__ = (
        "_pending",
        "agent_periods",
        "body_codes",
        "by_code",
        "course_agents",
        "diagnoses",
        "file",
        "flare_boundary_mg_per_day",
        "height_codes",
        "name_cache",
        "names",
        "origin",
        "timing_codes",
        "units",
        "version",
        "weight_codes",
        "words",
    )

    def __init__(self, file: TerminologyFile, origin: str) -> None:
        self._start(file.terminology_version, file.agents, origin)
        self._index(file)

    @classmethod
    def from_cache(cls, payload: bytes, source: bytes, origin: str) -> "Terminology":
        """Return a cached payload's terminology, its version and agents' codes decoded first."""
        # The rest of the file and its indexes (diagnoses, names, units, observation and timing
        # codes) on first read (__getattr__): a Bundle reads them, a plain patient state never
        # does. `source` (the file's bytes) is parsed only if the rest cannot be decoded.
        products = msgspec.msgpack.decode(payload, type=_Products)
        self = object.__new__(cls)
        self._start(products.terminology_version, products.agents, origin)
        self._pending = (payload, source)
        return self

    def _start(self, version: str, agents: tuple[Agent, ...], origin: str) -> None:
        """Set what every terminology has from the start: version, code index, guideline facts."""
        self._pending: tuple[bytes, bytes] | None = None
        self.origin = origin
        self.version = version
        self.by_code: dict[str, CodedAgent] = {}
        for agent in agents:
            if agent.ingredient is not None:
                self.by_code[agent.ingredient.code] = CodedAgent(agent.id, None)
            for product in agent.products:
                self.by_code[product.code] = CodedAgent(agent.id, product)
        self.name_cache: dict[str, NameMatch] = {}
        # The guideline's facts a chart reading needs (with_guideline): none until given.
        self.agent_periods: Mapping[str, str] = {}
        self.course_agents: frozenset[str] = frozenset()
        self.flare_boundary_mg_per_day: Decimal | None = None

    def __getattr__(self, name: str) -> object:
        """Build the rest of the indexes when one of them is first read (see from_cache)."""
        # Every other slot is set from the start: a missing one is one `from_cache` left.
        if name == "_pending" or name not in Terminology.__slots__:
            raise AttributeError(name)
        with _BUILDING:  # one thread builds; another waits, then finds every slot set
            pending = self._pending
            if pending is not None:
                payload, source = pending
                try:
                    file = msgspec.msgpack.decode(payload, type=TerminologyFile)
                except (msgspec.DecodeError, ValueError, TypeError):
                    file = _parse_file(source.decode("utf-8"), origin=self.origin)
                self._index(file)
                self._pending = None
        return object.__getattribute__(self, name)

    def __getstate__(self) -> tuple[None, dict[str, object]]:
        """Return the slots to pickle, every index built and nothing left pending."""
        self.file  # noqa: B018 - builds the indexes if they are still pending
        return None, {s: getattr(self, s) for s in Terminology.__slots__} | {"_pending": None}

    def _index(self, file: TerminologyFile) -> None:
        """Build the indexes of diagnoses, drug names, units, observation and timing codes."""
        # Built in locals and set whole: a reader never sees a half-built index.
        names: dict[tuple[str, ...], str] = {}
        for agent in file.agents:
            spellings = [agent.id.replace("_", " "), *agent.synonyms, *agent.brand_names]
            if agent.ingredient is not None:
                spellings.append(agent.ingredient.display)
            for spelling in spellings:
                tokens = name_tokens(spelling)
                if tokens:
                    names[tokens] = agent.id
        units: dict[str, str] = {}
        lowered: dict[str, set[str]] = {}
        for unit in file.units.to_ucum:
            for spelling in unit.spellings:
                units[spelling.strip()] = unit.ucum
                lowered.setdefault(spelling.strip().lower(), set()).add(unit.ucum)
        for spelling, ucums in lowered.items():
            if len(ucums) == 1:
                units.setdefault(spelling, next(iter(ucums)))
        weight = frozenset(o.code for o in file.observations.body_weight)
        height = frozenset(o.code for o in file.observations.body_height)
        self.diagnoses = {(d.system, d.code.upper()): d for d in file.diagnoses}
        self.names = names
        # Single words of agent names, for spotting a name that only resembles one.
        self.words = {w: a for tokens, a in names.items() for w in tokens if len(w) >= 5}
        self.units = units
        self.weight_codes, self.height_codes = weight, height
        # One lookup for the Observation loop most chart entries pass through (weight first).
        self.body_codes = dict.fromkeys(height, "height") | dict.fromkeys(weight, "weight")
        self.timing_codes = {t.code: t for t in file.timing.codes}
        self.file = file

    def with_guideline(self, knowledge: Knowledge) -> "Terminology":
        """Return this terminology with the guideline's dose periods, course agents and boundary.

        A dose read from a chart is stated per each agent's dose period, `last_given` is read for
        the agents given as courses, and a prednisone range is checked against the flare
        boundary: all three come from the knowledge alone.
        """
        copy = object.__new__(Terminology)
        self.file  # noqa: B018 - set last, so read here once every index is built
        for slot in Terminology.__slots__:
            setattr(copy, slot, getattr(self, slot))
        copy.agent_periods = knowledge.agent_periods
        copy.course_agents = frozenset(a.id for a in knowledge.agents if a.given_as_course)
        copy.flare_boundary_mg_per_day = knowledge.thresholds.prednisone_flare_boundary_mg_per_day
        return copy

    def diagnosis(self, system: str, code: str) -> Diagnosis | None:
        """Return what a diagnosis code means, trying ICD-10 codes written without their dot."""
        key = code.strip().upper()
        found = self.diagnoses.get((system, key))
        if found is None and "." not in key and len(key) > 3 and "icd-10" in system:
            found = self.diagnoses.get((system, f"{key[:3]}.{key[3:]}"))
        return found

    def agent_for_code(self, code: str) -> CodedAgent | None:
        """Return the agent an RxNorm ingredient or product code names."""
        return self.by_code.get(code.strip())

    def agent_for_name(self, text: str) -> NameMatch:
        """Return which agent a free-text drug name names, resembles, or that it is unrelated."""
        found = self.name_cache.get(text)
        if found is None:
            if len(self.name_cache) >= _NAME_CACHE_SIZE:
                self.name_cache.clear()
            found = self.name_cache[text] = self._match_name(text)
        return found

    def _match_name(self, text: str) -> NameMatch:
        """Match a drug name against the agents' names (uncached)."""
        tokens = name_tokens(text)
        found: set[str] = set()
        covered: set[int] = set()
        for phrase, agent in self.names.items():
            n = len(phrase)
            for start in range(len(tokens) - n + 1):
                if tokens[start : start + n] == phrase:
                    found.add(agent)
                    covered.update(range(start, start + n))
        if len(found) == 1:
            rest = [t for i, t in enumerate(tokens) if i not in covered]
            if all(t in FORM_WORDS for t in rest):
                return NameMatch("agent", tuple(found))
            if any(t in TOPICAL_WORDS for t in rest) and all(
                t in FORM_WORDS or t in TOPICAL_WORDS for t in rest
            ):
                return NameMatch("topical", tuple(found))
            return NameMatch("resembles", tuple(found))
        if found:
            return NameMatch("resembles", tuple(sorted(found)))
        near = {
            agent
            for token in tokens
            if len(token) >= 5 and token not in FORM_WORDS
            for word, agent in self.words.items()
            if _similar(token, word)
        }
        if near:
            return NameMatch("near", tuple(sorted(near)))
        return NameMatch("unrelated", ())

    def ucum(self, spelling: str) -> str | None:
        """Return the UCUM code for a unit as a record spells it, or None."""
        key = spelling.strip()
        return self.units.get(key) or self.units.get(key.lower())


def _problems(file: TerminologyFile) -> list[str]:
    """Return what is wrong across entries (duplicates, dangling meanings), as 'key: message'."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for i, d in enumerate(file.diagnoses):
        if d.meaning not in file.diagnosis_meanings:
            out.append(f"diagnoses[{i}].meaning: '{d.meaning}' is not in diagnosis_meanings")
        key = (d.system, d.code.upper())
        if key in seen:
            out.append(f"diagnoses[{i}].code: {d.code} is listed twice")
        seen.add(key)
    ids: set[str] = set()
    codes: set[str] = set()
    for agent in file.agents:
        if agent.id in ids:
            out.append(f"agents.{agent.id}: the agent is listed twice")
        ids.add(agent.id)
        if agent.ingredient is None and agent.products:
            out.append(f"agents.{agent.id}.products: products without an ingredient")
        own = [agent.ingredient.code] if agent.ingredient is not None else []
        for code in own + [p.code for p in agent.products]:
            if code in codes:
                out.append(f"agents.{agent.id}: RxNorm code {code} is listed twice")
            codes.add(code)
    owner: dict[str, str] = {}
    for unit in file.units.to_ucum:
        for spelling in unit.spellings:
            if owner.setdefault(spelling.strip(), unit.ucum) != unit.ucum:
                out.append(f"units.to_ucum: '{spelling}' maps to two units")
    timing = [t.code for t in file.timing.codes]
    if len(timing) != len(set(timing)):
        out.append("timing.codes: a code is listed twice")
    return out


def _locate(raw: object, exc: msgspec.ValidationError) -> tuple[str, str]:
    """Return the failing key (agents named by id) and the message of a validation error."""
    m = re.match(_AT, str(exc), re.S)
    path, message = ((m.group("path") or "").lstrip("."), m.group("msg")) if m else ("", str(exc))
    index = re.match(_AGENT_INDEX, path)
    agents = raw.get("agents") if isinstance(raw, dict) else None
    if index is not None and isinstance(agents, list) and int(index[1]) < len(agents):
        entry = agents[int(index[1])]
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            path = f"agents.{entry['id']}" + path[index.end() :]
    return path or "(top level)", message


def parse_terminology(text: str, *, origin: str) -> Terminology:
    """Parse and validate terminology YAML text; `origin` names the file in errors."""
    return Terminology(_parse_file(text, origin=origin), origin)


def _parse_file(text: str, *, origin: str) -> TerminologyFile:
    """Parse and validate terminology YAML text to the file's structure."""
    # Imported here: a start from the cache never needs the YAML parser.
    import yaml

    try:
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise KnowledgeError(origin, "(yaml)", str(exc)) from exc
    try:
        file = msgspec.convert(raw, TerminologyFile)
    except msgspec.ValidationError as exc:
        key, message = _locate(raw, exc)
        raise KnowledgeError(origin, key, message) from exc
    found = _problems(file)
    if found:
        key, _, message = found[0].partition(": ")
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise KnowledgeError(origin, key, message + more)
    return file


@cache
def load_packaged_terminology(cache_dir: "Folder | None" = None) -> Terminology:
    """Read and validate the terminology shipped inside the package (once per process).

    With a cache folder, the validated file is kept there keyed by its bytes
    (knowledge/cache.py), and read back instead of parsed while those bytes are unchanged.
    """
    data = read_packaged(PACKAGED_FILE)
    origin = f"knowledge/data/{PACKAGED_FILE}"
    payload = cached_payload("terminology", data, cache_dir)
    if payload is not None:
        try:
            return Terminology.from_cache(payload, data, origin)
        except (msgspec.DecodeError, ValueError, TypeError):
            pass  # decoded as a whole below, or parsed again
    file = cached(
        "terminology",
        data,
        TerminologyFile,
        lambda: _parse_file(data.decode("utf-8"), origin=origin),
        cache_dir,
    )
    return Terminology(file, origin)


def load_terminology_file(path: "Path") -> Terminology:
    """Read and validate a terminology file from disk (for editors and tests)."""
    return parse_terminology(path.read_text(encoding="utf-8"), origin=str(path))


def amount_decimal(amount: Amount) -> Decimal:
    """Return an ingredient amount as an exact Decimal (by its shortest repr)."""
    return Decimal(repr(float(amount.value)))
