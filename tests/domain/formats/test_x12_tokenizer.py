from __future__ import annotations

import random

import pytest

from domain.tracking.canonical import ParseIssue
from domain.tracking.formats.x12.tokenizer import (
    Delimiters,
    InterchangeReader,
    Segment,
    SegmentReader,
)

STATUS = ["B10*PRO1*SHIP1*ABCD", "LX*1", "AT7*AF*NS***20191103*1509*CS", "MS1*WINNIPEG*MB*CA"]


def isa(
    control: int = 1,
    *,
    sender: str = "SENDER",
    receiver: str = "RECEIVER",
    version: str = "00401",
    element: str = "*",
    component: str = ">",
    repetition: str = "U",
    terminator: str = "~",
) -> str:
    fields = [
        "00",
        " " * 10,
        "00",
        " " * 10,
        "ZZ",
        sender.ljust(15),
        "ZZ",
        receiver.ljust(15),
        "191103",
        "1800",
        repetition,
        version,
        f"{control:09d}",
        "0",
        "P",
        component,
    ]
    return "ISA" + element + element.join(fields) + terminator


def interchange(
    *sets: list[str], control: int = 1, group: int = 1, functional: str = "QM", set_id: str = "214"
) -> str:
    """An interchange of one functional group, the sets numbered 0001.., one segment per line."""
    segments: list[str] = [f"GS*{functional}*SENDER*RECEIVER*20191103*1800*{group}*X*004010"]
    for number, body in enumerate(sets, start=1):
        segments += [f"ST*{set_id}*{number:04d}", *body, f"SE*{len(body) + 2}*{number:04d}"]
    segments += [f"GE*{len(sets)}*{group}", f"IEA*1*{control:09d}"]
    return isa(control) + "\n" + "".join(segment + "~\n" for segment in segments)


def read(body: str | bytes) -> tuple[list[list[str]], InterchangeReader]:
    """The segment tags of every set yielded, and the reader (for its envelope)."""
    reader = InterchangeReader(body.encode() if isinstance(body, str) else body)
    tags = [
        [segment.tag for segment in transaction_set.segments] for transaction_set in reader.transaction_sets()
    ]
    return tags, reader


def statuses(
    reader: InterchangeReader,
) -> list[tuple[str, bool, list[str], list[tuple[str, bool, list[str]]]]]:
    """(group control number, rejected, AK9 codes, [(set control number, rejected, AK5 codes)]) per group."""
    return [
        (
            group.control_number,
            group.rejected,
            group.codes,
            [(summary.control_number, summary.rejected, summary.codes) for summary in group.sets],
        )
        for interchange in reader.envelope.interchanges
        for group in interchange.groups
    ]


GOOD = interchange(STATUS, STATUS)
SET_TAGS = ["ST", "B10", "LX", "AT7", "MS1", "SE"]


def test_a_good_interchange_yields_its_sets_and_no_issue() -> None:
    tags, reader = read(GOOD)
    assert tags == [SET_TAGS, SET_TAGS]
    assert reader.envelope.issues == []
    assert statuses(reader) == [("1", False, [], [("0001", False, []), ("0002", False, [])])]
    assert [interchange.rejected for interchange in reader.envelope.interchanges] == [False]


def test_delimiters_come_from_the_isa() -> None:
    text = (
        isa(version="00501", element="|", component=":", repetition="^", terminator="\n")
        + "GS|QM|S|R|20191103|1800|7|X|005010\nST|214|0001\nL11|A^B|CN\nSE|3|0001\nGE|1|7\nIEA|1|000000001\n"
    )
    reader = SegmentReader(text.encode())
    segments = list(reader)
    assert reader.delimiters == Delimiters(element="|", component=":", segment="\n", repetition="^")
    assert segments[3] == Segment(number=4, tag="L11", elements=("A^B", "CN"))
    assert [segment.tag for segment in segments] == ["ISA", "GS", "ST", "L11", "SE", "GE", "IEA"]
    assert reader.issues == []


def test_isa11_is_a_standards_identifier_before_00402() -> None:
    reader = SegmentReader(GOOD.encode())
    next(iter(reader))
    assert reader.delimiters == Delimiters(element="*", component=">", segment="~", repetition=None)


def test_a_letter_as_repetition_separator_from_00402_is_flagged_and_ignored() -> None:
    reader = SegmentReader((isa(version="00501") + "IEA*0*000000001~").encode())
    assert [segment.tag for segment in reader] == ["ISA", "IEA"]
    assert reader.issues == [
        ParseIssue(
            position="segment 1 (ISA) element 11",
            code="x12.repetition_separator_invalid",
            reason="ISA11 is 'U': from version 00402 on it is the repetition separator; repeated elements are "
            "read as single values",
        )
    ]


def test_bom_crlf_and_indentation_are_tolerated() -> None:
    messy = b"\xef\xbb\xbf\r\n " + "\r\n    ".join(GOOD.split("\n")).encode()
    tags, reader = read(messy)
    assert tags == [SET_TAGS, SET_TAGS]
    assert reader.envelope.issues == []


def test_lines_wrapped_inside_segments_are_joined() -> None:
    wrapped = GOOD.replace("AT7*AF*NS***2019", "AT7*AF*NS***2019\r\n")
    reader = InterchangeReader(wrapped.encode())
    at7 = [s for ts in reader.transaction_sets() for s in ts.segments if s.tag == "AT7"]
    assert at7[0].elements == ("AF", "NS", "", "", "20191103", "1509", "CS")


def test_a_final_segment_without_terminator_is_read() -> None:
    tags, reader = read(GOOD.rstrip("~\n"))
    assert tags == [SET_TAGS, SET_TAGS]
    assert reader.envelope.issues == []


def test_invalid_utf8_is_read_as_latin1_and_flagged() -> None:
    body = GOOD.replace("MS1*WINNIPEG", "MS1*MONTR\xc9AL", 1).encode("latin-1")
    reader = InterchangeReader(body)
    ms1 = [s for ts in reader.transaction_sets() for s in ts.segments if s.tag == "MS1"]
    assert ms1[0].get(1) == "MONTRÉAL"
    assert reader.envelope.issues == [
        ParseIssue(
            position="byte 234",
            code="x12.encoding_fallback",
            reason="the message is not valid UTF-8 (byte 234); it was read as latin-1",
        )
    ]
    assert body[234:235] == b"\xc9"


def test_several_interchanges_in_one_message() -> None:
    second = interchange(STATUS, control=2).replace("*", "|").replace("~", "!")
    tags, reader = read(GOOD + second)
    assert tags == [SET_TAGS, SET_TAGS, SET_TAGS]
    assert [i.control_number for i in reader.envelope.interchanges] == ["000000001", "000000002"]
    assert [i.delimiters.element for i in reader.envelope.interchanges] == ["*", "|"]
    assert reader.envelope.issues == []


def test_data_after_the_iea_is_ignored_with_a_warning() -> None:
    tags, reader = read(GOOD + "garbage here~more~")
    assert tags == [SET_TAGS, SET_TAGS]
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 17",
            code="x12.trailing_data",
            reason="segment 17 follows the IEA and is ignored, with anything after it",
        )
    ]


# --- envelope errors ------------------------------------------------------------------------------


def test_wrong_se_count_rejects_that_set_only() -> None:
    tags, reader = read(GOOD.replace("SE*6*0001", "SE*7*0001"))
    assert tags == [SET_TAGS, SET_TAGS]
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 8 (SE) element 01",
            code="x12.se_count_mismatch",
            reason="SE01 says '7' segments; transaction set 0001 has 6 (ST to SE inclusive); the set is rejected",
            fatal=True,
        )
    ]
    assert statuses(reader) == [("1", False, [], [("0001", True, ["4"]), ("0002", False, [])])]


def test_se_control_number_must_match_st() -> None:
    _, reader = read(GOOD.replace("SE*6*0002", "SE*6*0009"))
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 14 (SE) element 02",
            code="x12.se_control_mismatch",
            reason="SE02 '0009' does not match ST02 '0002'; the set is rejected",
            fatal=True,
        )
    ]
    assert statuses(reader) == [("1", False, [], [("0001", False, []), ("0002", True, ["3"])])]


def test_control_numbers_compare_as_numbers() -> None:
    _, reader = read(GOOD.replace("SE*6*0001", "SE*0000000006*1").replace("IEA*1*000000001", "IEA*00001*1"))
    assert reader.envelope.issues == []


def test_wrong_ge_count_rejects_the_group() -> None:
    _, reader = read(GOOD.replace("GE*2*1", "GE*3*1"))
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 15 (GE) element 01",
            code="x12.ge_count_mismatch",
            reason="GE01 says '3' transaction sets; functional group 1 has 2; the group is rejected",
            fatal=True,
        )
    ]
    assert statuses(reader) == [("1", True, ["5"], [("0001", False, []), ("0002", False, [])])]


def test_ge_control_number_must_match_gs() -> None:
    _, reader = read(GOOD.replace("GE*2*1", "GE*2*2"))
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 15 (GE) element 02",
            code="x12.ge_control_mismatch",
            reason="GE02 '2' does not match GS06 '1'; the group is rejected",
            fatal=True,
        )
    ]
    assert statuses(reader) == [("1", True, ["4"], [("0001", False, []), ("0002", False, [])])]


def test_wrong_iea_count_rejects_the_interchange() -> None:
    _, reader = read(GOOD.replace("IEA*1*", "IEA*2*"))
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 16 (IEA) element 01",
            code="x12.iea_count_mismatch",
            reason="IEA01 says '2' functional groups; interchange 000000001 has 1; the interchange is rejected",
            fatal=True,
        )
    ]
    assert [interchange.rejected for interchange in reader.envelope.interchanges] == [True]


def test_iea_control_number_must_match_isa() -> None:
    _, reader = read(GOOD.replace("IEA*1*000000001", "IEA*1*000000002"))
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 16 (IEA) element 02",
            code="x12.iea_control_mismatch",
            reason="IEA02 '000000002' does not match ISA13 '000000001'; the interchange is rejected",
            fatal=True,
        )
    ]
    assert [interchange.rejected for interchange in reader.envelope.interchanges] == [True]


def test_a_duplicate_set_control_number_rejects_the_second_set() -> None:
    _, reader = read(GOOD.replace("ST*214*0002", "ST*214*0001").replace("SE*6*0002", "SE*6*0001"))
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 9 (ST) element 02",
            code="x12.st_duplicate_control",
            reason="transaction set control number '0001' is used twice in functional group 1; the second set "
            "is rejected",
            fatal=True,
        )
    ]
    assert statuses(reader) == [("1", False, [], [("0001", False, []), ("0001", True, ["23"])])]


def test_an_interchange_without_iea_is_truncated() -> None:
    tags, reader = read(GOOD[: GOOD.index("IEA")])
    assert tags == [SET_TAGS, SET_TAGS]
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 15 (GE)",
            code="x12.iea_missing",
            reason="interchange 000000001 (ISA at segment 1) has no IEA trailer after segment 15 (GE): the "
            "message ends there; the interchange is rejected",
            fatal=True,
        )
    ]
    assert [interchange.rejected for interchange in reader.envelope.interchanges] == [True]


def test_a_message_cut_inside_a_set_names_every_missing_trailer() -> None:
    tags, reader = read(GOOD[: GOOD.index("MS1")])
    assert tags == []  # an incomplete set is never handed out
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 6 (AT7)",
            code="x12.se_missing",
            reason="transaction set 0001 (ST at segment 3) has no SE trailer after segment 6 (AT7): the message "
            "ends there; the set is rejected",
            fatal=True,
        ),
        ParseIssue(
            position="segment 6 (AT7)",
            code="x12.ge_missing",
            reason="functional group 1 (GS at segment 2) has no GE trailer after segment 6 (AT7): the message "
            "ends there; the group is rejected",
            fatal=True,
        ),
        ParseIssue(
            position="segment 6 (AT7)",
            code="x12.iea_missing",
            reason="interchange 000000001 (ISA at segment 1) has no IEA trailer after segment 6 (AT7): the "
            "message ends there; the interchange is rejected",
            fatal=True,
        ),
    ]
    assert statuses(reader) == [("1", True, ["3"], [("0001", True, ["2"])])]


def test_a_set_without_se_followed_by_another_set() -> None:
    text = GOOD.replace("SE*6*0001~\n", "")
    tags, reader = read(text)
    assert tags == [SET_TAGS]
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 7 (MS1)",
            code="x12.se_missing",
            reason="transaction set 0001 (ST at segment 3) has no SE trailer after segment 7 (MS1): segment 8 "
            "(ST) starts another transaction set; the set is rejected",
            fatal=True,
        )
    ]
    assert statuses(reader) == [("1", False, [], [("0001", True, ["2"]), ("0002", False, [])])]


def test_a_segment_outside_a_set_rejects_its_group() -> None:
    _, reader = read(GOOD.replace("SE*6*0001~\n", "SE*6*0001~\nLX*9~\nLX*10~\n"))
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 9 (LX)",
            code="x12.unexpected_segment",
            reason="segment 9 (LX) is outside a transaction set; the functional group 1 is rejected",
            fatal=True,
        )
    ]
    assert statuses(reader) == [("1", True, [], [("0001", False, []), ("0002", False, [])])]


def test_a_set_outside_a_group_rejects_the_interchange() -> None:
    _, reader = read(GOOD.replace("GE*2*1~\n", "GE*2*1~\nST*214*0003~\nLX*1~\nSE*3*0003~\n"))
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 16 (ST)",
            code="x12.unexpected_segment",
            reason="segment 16 (ST) is outside a functional group; the interchange 000000001 is rejected",
            fatal=True,
        )
    ]
    assert [interchange.rejected for interchange in reader.envelope.interchanges] == [True]


# --- unreadable input -----------------------------------------------------------------------------


def test_an_isa_shorter_than_106_characters() -> None:
    short = GOOD.replace("SENDER         ", "SENDER        ", 1)
    tags, reader = read(short)
    assert tags == []
    assert reader.envelope.issues == [
        ParseIssue(
            position="segment 1 (ISA) element 06",
            code="x12.isa_length",
            reason="ISA06 has 14 characters, it must have 15 (the ISA is fixed-width, 106 characters with its "
            "terminator; this one has 105)",
            fatal=True,
        )
    ]
    assert reader.envelope.interchanges == []


@pytest.mark.parametrize(
    ("text", "issue"),
    [
        (
            GOOD.replace("ISA*", "ISAX", 1),
            ParseIssue(
                position="segment 1 (ISA)",
                code="x12.bad_delimiters",
                reason="the element separator (ISA character 4) is 'X'; it must be a punctuation character",
                fatal=True,
            ),
        ),
        (
            GOOD.replace("*P*>~", "*P*>*", 1),
            ParseIssue(
                position="segment 1 (ISA)",
                code="x12.bad_delimiters",
                reason="the segment terminator (the character after ISA16) is '*'; it must be a punctuation or "
                "line-end character distinct from the element separator '*' and the component separator '>'",
                fatal=True,
            ),
        ),
        (
            GOOD.replace("*P*>~", "*P*A~", 1),
            ParseIssue(
                position="segment 1 (ISA) element 16",
                code="x12.bad_delimiters",
                reason="the component separator ISA16 is 'A'; it must be a punctuation character",
                fatal=True,
            ),
        ),
        (
            GOOD[:106] + GOOD[106:].replace("~", ""),
            ParseIssue(
                position="segment 1 (ISA)",
                code="x12.bad_delimiters",
                reason="the segment terminator '~' declared by the ISA (the character after ISA16) never occurs "
                "after it; the segments end with line breaks instead",
                fatal=True,
            ),
        ),
        (
            GOOD[:106] + GOOD[106:].replace("*", "|"),
            ParseIssue(
                position="segment 2",
                code="x12.segment_invalid",
                reason="segment 2 does not start with a segment ID followed by the element separator '*' (found "
                "'GS|QM|SENDER|RECEIVER|20…'): corrupted data or wrong delimiters; reading stops here",
                fatal=True,
            ),
        ),
        (
            "ISA*00*" + "x" * 60,
            ParseIssue(
                position="segment 1 (ISA)",
                code="x12.bad_delimiters",
                reason="the ISA has 2 element separators '*', it needs 16: wrong element separator or truncated "
                "ISA",
                fatal=True,
            ),
        ),
        (
            "UNA:+.? 'UNB+UNOC:3+SENDER+RECEIVER'",
            ParseIssue(
                position="segment 1 (ISA)",
                code="x12.isa_missing",
                reason='an X12 interchange starts with ISA; found "UNA:+.? \'UNB+UNOC:3+SEND…"',
                fatal=True,
            ),
        ),
        (
            " \r\n\t",
            ParseIssue(position="segment 1", code="x12.empty", reason="the message is empty", fatal=True),
        ),
    ],
    ids=[
        "letter-separator",
        "terminator-equals-separator",
        "letter-component",
        "terminator-never-used",
        "other-element-separator",
        "isa-too-few-elements",
        "edifact",
        "blank",
    ],
)
def test_wrong_delimiters_and_garbage_are_precise_fatal_errors(text: str, issue: ParseIssue) -> None:
    tags, reader = read(text)
    assert tags == []
    assert reader.envelope.issues == [issue]


def test_garbage_inside_a_set_rejects_that_set_only() -> None:
    text = GOOD.replace("LX*1~\n", "LX*1~\n\x00\x01garbage~\n\x02more~\n", 1)
    tags, reader = read(text)
    assert tags == [["ST", "B10", "LX", "\x00\x01garbage", "\x02more", "AT7", "MS1", "SE"], SET_TAGS]
    assert [issue.code for issue in reader.envelope.issues] == [
        "x12.segment_invalid",
        "x12.se_count_mismatch",
    ]
    assert reader.envelope.issues[0] == ParseIssue(
        position="segment 6",
        code="x12.segment_invalid",
        reason="segment 6 does not start with a segment ID followed by the element separator '*' (found "
        "'\\x00\\x01garbage'): corrupted data or wrong delimiters; the set is rejected",
        fatal=True,
    )
    assert statuses(reader) == [("1", False, [], [("0001", True, ["5", "4"]), ("0002", False, [])])]


def test_five_megabytes_of_random_bytes() -> None:
    body = random.Random(214).randbytes(5 * 1024 * 1024)  # noqa: S311 - seeded noise, not secrets
    with pytest.raises(UnicodeDecodeError) as not_utf8:
        body.decode("utf-8")
    start = not_utf8.value.start
    tags, reader = read(body)
    assert tags == []
    assert reader.envelope.issues == [
        ParseIssue(
            position=f"byte {start}",
            code="x12.encoding_fallback",
            reason=f"the message is not valid UTF-8 (byte {start}); it was read as latin-1",
        ),
        ParseIssue(
            position="segment 1 (ISA)",
            code="x12.isa_missing",
            reason=f"an X12 interchange starts with ISA; found {body[:24].decode('latin-1') + '…'!r}",
            fatal=True,
        ),
    ]
