"""From source codes to canonical milestones and exception signals.

The built-in tables are data (``mappings/<system>.csv``); a tenant may override any row, for all carriers or
for one carrier. Resolution never guesses: a code with no row is *unknown* — kept raw, flagged as a
data-quality signal, and it does not advance the timeline.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from domain.shipments.models import MilestoneCode
from domain.tracking.canonical import CanonicalEvent, Signal, SourceCode

MAPPINGS_DIR = Path(__file__).parent / "mappings"
CODELISTS_DIR = Path(__file__).parent / "codelists"
CANONICAL_SYSTEM = "canonical"  # codes that already are canonical milestones (our JSON, CSV)
COLUMNS = ("code", "milestone", "signal", "raw_only", "description")
MILESTONES = frozenset(MilestoneCode)
SIGNALS = frozenset(Signal)


class MappingError(ValueError):
    """A mapping row that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True, slots=True)
class CodeMapping:
    milestone: str | None = None
    signal: str | None = None
    raw_only: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Resolution:
    milestone: str | None
    signals: tuple[str, ...]
    unknown: tuple[str, ...] = ()  # "system:code" of every code that had no mapping row

    @property
    def advances_timeline(self) -> bool:
        return self.milestone is not None


def validate_row(row: Mapping[str, str | None], where: str) -> CodeMapping:
    milestone = (row.get("milestone") or "").strip() or None
    signal = (row.get("signal") or "").strip() or None
    raw_only = (row.get("raw_only") or "").strip().lower() in ("yes", "true", "1")
    if milestone is not None and milestone not in MILESTONES:
        raise MappingError(f"{where}: milestone {milestone!r} is not a canonical milestone")
    if signal is not None and signal not in SIGNALS:
        raise MappingError(f"{where}: signal {signal!r} is not a known signal")
    if raw_only and (milestone or signal):
        raise MappingError(f"{where}: a raw_only row cannot also map a milestone or signal")
    if not (milestone or signal or raw_only):
        raise MappingError(f"{where}: a row needs a milestone, a signal or raw_only=yes")
    return CodeMapping(milestone, signal, raw_only, (row.get("description") or "").strip())


def read_mapping_file(path: Path) -> dict[str, CodeMapping]:
    rows: dict[str, CodeMapping] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        lines = handle.readlines()
        # '#' lines before the header may cite where the mapping comes from
        comments = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
        reader = csv.DictReader(lines[comments:])
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise MappingError(f"{path.name}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=comments + 2):
            code = (row.get("code") or "").strip()
            if not code:
                raise MappingError(f"{path.name}:{line}: empty code")
            if code in rows:
                raise MappingError(f"{path.name}:{line}: code {code!r} appears twice")
            rows[code] = validate_row(row, f"{path.name}:{line}")
    return rows


@cache
def builtin_tables(directory: Path = MAPPINGS_DIR) -> Mapping[str, Mapping[str, CodeMapping]]:
    return {path.stem: read_mapping_file(path) for path in sorted(directory.glob("*.csv"))}


def read_codelist(path: Path) -> list[str]:
    """Codes of a standard's or vendor's list: ``code<TAB>meaning`` lines, ``#`` comments."""
    codes = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            codes.append(line.split("\t", 1)[0].strip())
    return codes


OverrideKey = tuple[str | None, str, str]  # (carrier code or None for all carriers, system, code)


@dataclass
class MappingTable:
    """The built-in rows with one tenant's overrides on top (carrier-specific first, then tenant-wide).

    A table is built per request (ingest message) and never changed after, so each code's resolution is
    remembered for the table's life: a batch of events repeats a handful of codes thousands of times.
    """

    builtin: Mapping[str, Mapping[str, CodeMapping]] = field(default_factory=builtin_tables)
    overrides: Mapping[OverrideKey, CodeMapping] = field(default_factory=dict)
    _resolutions: dict[tuple[SourceCode, str | None], Resolution] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def lookup(self, system: str, code: str, carrier: str | None = None) -> CodeMapping | None:
        if carrier is not None and (carrier, system, code) in self.overrides:
            return self.overrides[(carrier, system, code)]
        if (None, system, code) in self.overrides:
            return self.overrides[(None, system, code)]
        if system == CANONICAL_SYSTEM and code in MILESTONES:
            return CodeMapping(milestone=code)
        return self.builtin.get(system, {}).get(code)

    def resolve(self, code: SourceCode, carrier: str | None = None) -> Resolution:
        key = (code, carrier)
        resolution = self._resolutions.get(key)
        if resolution is None:
            resolution = self._resolutions[key] = self._resolve(code, carrier)
        return resolution

    def _resolve(self, code: SourceCode, carrier: str | None) -> Resolution:
        signals: list[str] = []
        unknown: list[str] = []
        primary = self.lookup(code.system, code.code, carrier)
        if primary is None:
            unknown.append(f"{code.system}:{code.code}")
        elif primary.signal:
            signals.append(primary.signal)
        if code.qualifier_system and code.qualifier:
            qualifier = self.lookup(code.qualifier_system, code.qualifier, carrier)
            if qualifier is None:
                unknown.append(f"{code.qualifier_system}:{code.qualifier}")
            elif qualifier.signal and qualifier.signal not in signals:
                signals.append(qualifier.signal)
        if unknown:
            signals.append(Signal.DATA_QUALITY)
        # an unknown primary code never advances the timeline; an unknown qualifier does not stop it
        milestone = primary.milestone if primary is not None else None
        return Resolution(milestone=milestone, signals=tuple(signals), unknown=tuple(unknown))

    def resolve_event(self, event: CanonicalEvent) -> Resolution:
        return self.resolve(event.code, event.carrier_code)


def unmapped_codes(systems: Iterable[str] | None = None) -> dict[str, list[str]]:
    """For each code list in ``codelists/``, the codes with no built-in row (the walk test wants none)."""
    tables = builtin_tables()
    missing: dict[str, list[str]] = {}
    for path in sorted(CODELISTS_DIR.glob("*.txt")):
        if systems is not None and path.stem not in set(systems):
            continue
        rows = tables.get(path.stem, {})
        absent = [code for code in read_codelist(path) if code not in rows]
        if absent:
            missing[path.stem] = absent
    return missing
