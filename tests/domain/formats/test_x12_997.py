from __future__ import annotations

import datetime as dt

import pytest

from domain.tracking.formats.x12 import MEDIA_TYPE, build_997, parse_x12
from domain.tracking.formats.x12.tokenizer import InterchangeReader
from tests.domain.formats.test_x12_tokenizer import GOOD, STATUS, interchange, isa

NOW = dt.datetime(2019, 11, 4, 12, 34, tzinfo=dt.UTC)
ENVELOPE = (
    "ISA*00*          *00*          *ZZ*RECEIVER       *ZZ*SENDER         *191104*1234*U*00401*000000041*0*P*>~"
    "GS*FA*RECEIVER*SENDER*20191104*1234*42*X*004010~"
)
TRAILER = "GE*1*42~IEA*1*000000041~"


def acknowledge(text: str | bytes) -> str:
    body = text.encode() if isinstance(text, str) else text
    message = parse_x12(body, now=NOW, interchange_control_number=41, group_control_number=42)
    assert message.acknowledgment is not None
    assert message.acknowledgment_media_type == "application/edi-x12"
    return message.acknowledgment.decode()


def test_an_accepted_interchange() -> None:
    assert acknowledge(GOOD) == (
        ENVELOPE
        + "ST*997*0001~AK1*QM*1~AK2*214*0001~AK5*A~AK2*214*0002~AK5*A~AK9*A*2*2*2~SE*8*0001~"
        + TRAILER
    )
    assert MEDIA_TYPE == "application/edi-x12"


def test_our_997_is_itself_valid_x12() -> None:
    acknowledgment = acknowledge(GOOD.replace("SE*6*0001", "SE*5*0001"))
    reader = InterchangeReader(acknowledgment.encode())
    sets = list(reader.transaction_sets())
    assert reader.envelope.issues == []
    assert [(s.set_id, len(s.segments)) for s in sets] == [("997", 8)]


def test_a_rejected_set_and_a_partially_accepted_group() -> None:
    assert acknowledge(GOOD.replace("SE*6*0001", "SE*5*0001")) == (
        ENVELOPE
        + "ST*997*0001~AK1*QM*1~AK2*214*0001~AK5*R*4~AK2*214*0002~AK5*A~AK9*P*2*2*1~SE*8*0001~"
        + TRAILER
    )


def test_segment_and_element_errors_are_noted() -> None:
    bad_date = ["B10*PRO1*SHIP1*ABCD", "LX*1", "AT7*AF*NS***20190230*1509*CS", "AT7*X1****20191103*1509*XX"]
    assert acknowledge(interchange(bad_date, STATUS)) == (
        ENVELOPE
        + "ST*997*0001~AK1*QM*1~AK2*214*0001~"
        + "AK3*AT7*4**8~AK4*5*373*8*20190230~"
        + "AK3*AT7*5**8~AK4*2*1651*2~AK4*7*623*7*XX~"
        + "AK5*E*5~AK2*214*0002~AK5*A~AK9*E*2*2*2~SE*13*0001~"
        + TRAILER
    )


def test_all_sets_rejected_rejects_the_group() -> None:
    no_b10 = ["LX*1", "AT7*AF*NS***20191103*1509*CS"]
    assert acknowledge(interchange(no_b10)) == (
        ENVELOPE + "ST*997*0001~AK1*QM*1~AK2*214*0001~AK3*B10*2**3~AK5*R*5~AK9*R*1*1*0~SE*7*0001~" + TRAILER
    )


def test_a_group_error_rejects_the_group() -> None:
    assert acknowledge(GOOD.replace("GE*2*1", "GE*3*2")) == (
        ENVELOPE
        + "ST*997*0001~AK1*QM*1~AK2*214*0001~AK5*A~AK2*214*0002~AK5*A~AK9*R*3*2*0*5*4~SE*8*0001~"
        + TRAILER
    )


def test_an_interchange_error_rejects_every_group() -> None:
    assert acknowledge(GOOD.replace("IEA*1*", "IEA*2*")) == (
        ENVELOPE
        + "ST*997*0001~AK1*QM*1~AK2*214*0001~AK5*A~AK2*214*0002~AK5*A~AK9*R*2*2*0~SE*8*0001~"
        + TRAILER
    )


def test_a_truncated_interchange() -> None:
    assert acknowledge(GOOD[: GOOD.index("MS1")]) == (
        ENVELOPE + "ST*997*0001~AK1*QM*1~AK2*214*0001~AK5*R*2~AK9*R*1*1*0*3~SE*6*0001~" + TRAILER
    )


def test_the_inbound_delimiters_version_and_usage_go_back() -> None:
    text = (
        isa(version="00501", element="|", component=":", repetition="^", terminator="\n")
        + "GS|QM|S|R|20191103|1800|7|X|005010\nST|214|0001\nB10|P|S|ABCD\nLX|1\n"
        + "AT7|AF|NS|||20191103|1509|CS\nSE|5|0001\nGE|1|7\nIEA|1|000000001\n"
    )
    message = parse_x12(text.encode(), now=NOW)
    assert message.acknowledgment == (
        b"ISA|00|          |00|          |ZZ|RECEIVER       |ZZ|SENDER         |191104|1234|^|00501|000000001|0|P|:\n"
        b"GS|FA|R|S|20191104|1234|7|X|005010\nST|997|0001\nAK1|QM|7|005010\nAK2|214|0001\nAK5|A\nAK9|A|1|1|1\n"
        b"SE|6|0001\nGE|1|7\nIEA|1|000000001\n"
    )


def test_one_997_interchange_per_inbound_interchange() -> None:
    second = GOOD.replace("000000001", "000000002")
    acknowledgment = acknowledge(GOOD + second)
    one = "ST*997*0001~AK1*QM*1~AK2*214*0001~AK5*A~AK2*214*0002~AK5*A~AK9*A*2*2*2~SE*8*0001~"
    assert acknowledgment == (
        ENVELOPE
        + one
        + TRAILER
        + ENVELOPE.replace("000000041", "000000042").replace("*42*", "*43*")
        + one
        + TRAILER.replace("*42~", "*43~").replace("000000041", "000000042")
    )


def test_nothing_to_acknowledge() -> None:
    assert parse_x12(b"\x00\x01 not x12 at all", now=NOW).acknowledgment is None
    our_997 = acknowledge(GOOD).encode()
    message = parse_x12(our_997, now=NOW)  # a 997 is never acknowledged
    assert message.acknowledgment is None
    assert message.acknowledgment_media_type is None


def test_now_must_be_aware_and_control_numbers_in_range() -> None:
    reader = InterchangeReader(GOOD.encode())
    list(reader.transaction_sets())
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        build_997(reader.envelope, now=dt.datetime(2019, 11, 4))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match=r"interchange control number 1000000000 is outside 1\.\.999999999"):
        build_997(reader.envelope, now=NOW, interchange_control_number=1_000_000_000)
    assert build_997(reader.envelope, now=NOW) == parse_x12(GOOD.encode(), now=NOW).acknowledgment
