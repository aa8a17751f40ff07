from __future__ import annotations

from pathlib import Path

import pytest

from domain.tracking.canonical import SourceCode
from domain.tracking.mapping import (
    CodeMapping,
    MappingError,
    MappingTable,
    Resolution,
    builtin_tables,
    read_mapping_file,
    unmapped_codes,
)

TABLES = {
    "x.status": {
        "D1": CodeMapping(milestone="DELIVERED"),
        "A9": CodeMapping(signal="DAMAGE"),
        "ZZ": CodeMapping(raw_only=True),
    },
    "x.reason": {"NS": CodeMapping(raw_only=True), "AO": CodeMapping(signal="WEATHER")},
}


def table() -> MappingTable:
    return MappingTable(builtin=TABLES, overrides={})


def test_a_mapped_code_advances_its_milestone() -> None:
    resolved = table().resolve(SourceCode("x.status", "D1", "x.reason", "NS"))
    assert resolved == Resolution(milestone="DELIVERED", signals=())


def test_signals_come_from_code_and_qualifier() -> None:
    resolved = table().resolve(SourceCode("x.status", "A9", "x.reason", "AO"))
    assert resolved == Resolution(milestone=None, signals=("DAMAGE", "WEATHER"))


def test_an_unknown_code_is_flagged_and_never_advances_the_timeline() -> None:
    resolved = table().resolve(SourceCode("x.status", "Q7"))
    assert resolved == Resolution(milestone=None, signals=("DATA_QUALITY",), unknown=("x.status:Q7",))
    assert not resolved.advances_timeline


def test_an_unknown_qualifier_is_flagged_but_the_known_code_still_applies() -> None:
    resolved = table().resolve(SourceCode("x.status", "D1", "x.reason", "??"))
    assert resolved == Resolution(milestone="DELIVERED", signals=("DATA_QUALITY",), unknown=("x.reason:??",))


def test_a_raw_only_code_is_known_but_maps_nothing() -> None:
    assert table().resolve(SourceCode("x.status", "ZZ")) == Resolution(milestone=None, signals=())


def test_canonical_codes_map_to_themselves() -> None:
    assert table().resolve(SourceCode("canonical", "PICKED_UP")).milestone == "PICKED_UP"
    assert table().resolve(SourceCode("canonical", "TELEPORTED")).unknown == ("canonical:TELEPORTED",)


def test_tenant_overrides_win_carrier_specific_first() -> None:
    mapping = MappingTable(
        builtin=TABLES,
        overrides={
            (None, "x.status", "ZZ"): CodeMapping(milestone="ARRIVED"),
            ("ABCD", "x.status", "ZZ"): CodeMapping(milestone="DISCHARGED"),
        },
    )
    assert mapping.resolve(SourceCode("x.status", "ZZ")).milestone == "ARRIVED"
    assert mapping.resolve(SourceCode("x.status", "ZZ"), carrier="ABCD").milestone == "DISCHARGED"
    assert mapping.resolve(SourceCode("x.status", "ZZ"), carrier="OTHR").milestone == "ARRIVED"


def test_a_resolution_is_remembered_by_its_own_table() -> None:
    code = SourceCode("x.status", "ZZ")
    plain = table()
    assert plain.resolve(code) is plain.resolve(code)
    overridden = MappingTable(
        builtin=TABLES, overrides={("ABCD", "x.status", "ZZ"): CodeMapping(milestone="DISCHARGED")}
    )
    assert overridden.resolve(code, carrier="ABCD") == Resolution(milestone="DISCHARGED", signals=())
    assert overridden.resolve(code) == plain.resolve(code) == Resolution(milestone=None, signals=())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "code,milestone,signal,raw_only,description\nD1,ARRIVAL,,,\n",
            "x.csv:2: milestone 'ARRIVAL' is not a canonical milestone",
        ),
        (
            "code,milestone,signal,raw_only,description\nD1,,FIRE,,\n",
            "x.csv:2: signal 'FIRE' is not a known signal",
        ),
        (
            "code,milestone,signal,raw_only,description\nD1,,,,\n",
            "x.csv:2: a row needs a milestone, a signal or raw_only=yes",
        ),
        (
            "code,milestone,signal,raw_only,description\nD1,DELIVERED,,yes,\n",
            "x.csv:2: a raw_only row cannot also map a milestone or signal",
        ),
        (
            "code,milestone,signal,raw_only,description\nD1,DELIVERED,,,\nD1,ARRIVED,,,\n",
            "x.csv:3: code 'D1' appears twice",
        ),
        ("code,milestone\nD1,DELIVERED\n", "x.csv: missing column(s) signal, raw_only, description"),
    ],
)
def test_bad_mapping_rows_are_refused_with_their_place(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(MappingError) as error:
        read_mapping_file(path)
    assert str(error.value) == message


def test_every_code_of_every_source_list_maps_or_is_marked_raw_only() -> None:
    builtin_tables()  # every shipped file parses and validates
    assert unmapped_codes() == {}
