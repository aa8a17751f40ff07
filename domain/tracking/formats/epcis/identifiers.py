"""GS1 keys in EPCIS identifiers: EPC URNs (``urn:epc:id:sscc:...``) and GS1 Digital Link URIs.

EPC URNs leave out the check digit, Digital Link URIs carry it; either way the key comes out as the
element string a person reads on a label (an 18-digit SSCC, a 13-digit GLN).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

# Application identifiers of the keys we read, with the shape of their value.
SSCC = "00"
GLN = "414"
GSIN = "402"
GINC = "401"
GRAI = "8003"
GIAI = "8004"
GTIN = "01"
GDTI = "253"
GLN_EXTENSION = "254"

_KEY_SHAPES = {
    SSCC: re.compile(r"^\d{18}$"),
    GLN: re.compile(r"^\d{13}$"),
    GSIN: re.compile(r"^\d{17}$"),
    GINC: re.compile(r"^[!-~]{1,30}$"),
    GRAI: re.compile(r"^0?\d{13}[!-~]{0,16}$"),
    GIAI: re.compile(r"^[!-~]{1,30}$"),
    GTIN: re.compile(r"^\d{14}$"),
    GDTI: re.compile(r"^\d{13}[!-~]{0,17}$"),
}
# Keys whose (leading) digits end in a GS1 check digit: how many digits that part has.
_CHECKED_LENGTH = {SSCC: 18, GLN: 13, GSIN: 17, GTIN: 14, GDTI: 13}

_SSCC_URN = re.compile(r"^urn:epc:id:sscc:(\d+)\.(\d+)$")
_SGLN_URN = re.compile(r"^urn:epc:id:sgln:(\d+)\.(\d*)\.(.+)$")
_GSIN_URN = re.compile(r"^urn:epc:id:gsin:(\d+)\.(\d+)$")


@dataclass(frozen=True, slots=True)
class GS1Key:
    ai: str  # the application identifier: "00" SSCC, "414" GLN ...
    value: str  # the element string, with its check digit
    extension: str | None = None  # GLN extension (AI 254) of a sub-location
    check_digit_ok: bool = True


def check_digit(body: str) -> str:
    """The GS1 mod-10 check digit for the digits ``body`` (weights 3, 1, 3 ... from the right)."""
    total = sum(int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(reversed(body)))
    return str(-total % 10)


def parse_gs1_key(identifier: str) -> GS1Key | None:
    """The GS1 key an EPC URN or a Digital Link URI names, or None for anything else."""
    if identifier.startswith("urn:epc:id:"):
        return _from_urn(identifier)
    if identifier.startswith(("https://", "http://")):
        return _from_digital_link(identifier)
    return None


def _from_urn(urn: str) -> GS1Key | None:
    if match := _SSCC_URN.match(urn):
        company, serial = match.groups()
        if len(company) + len(serial) == 17:
            body = serial[0] + company + serial[1:]
            return GS1Key(SSCC, body + check_digit(body))
    elif match := _SGLN_URN.match(urn):
        company, location, extension = match.groups()
        if len(company) + len(location) == 12:
            body = company + location
            return GS1Key(GLN, body + check_digit(body), None if extension == "0" else unquote(extension))
    elif match := _GSIN_URN.match(urn):
        company, serial = match.groups()
        if len(company) + len(serial) == 16:
            body = company + serial
            return GS1Key(GSIN, body + check_digit(body))
    return None


def _from_digital_link(uri: str) -> GS1Key | None:
    # https://any.domain[/optional/prefix]/AI/value[/AI/value]: the first key AI with a well-formed value wins
    segments = [unquote(segment) for segment in urlsplit(uri).path.split("/") if segment]
    for index in range(len(segments) - 1):
        ai, value = segments[index], segments[index + 1]
        shape = _KEY_SHAPES.get(ai)
        if shape is None or not shape.match(value):
            continue
        qualifiers = dict(zip(segments[index + 2 :: 2], segments[index + 3 :: 2], strict=False))
        checked = _CHECKED_LENGTH.get(ai)
        ok = True
        if checked is not None:
            digits = value[:checked]
            ok = digits[-1] == check_digit(digits[:-1])
        return GS1Key(ai, value, qualifiers.get(GLN_EXTENSION) if ai == GLN else None, ok)
    return None


def reference_value(identifier: str) -> str:
    """The number a person would key in for a business transaction identifier.

    ``urn:epcglobal:cbv:bt:<GLN>:<id>`` gives ``<id>``; a GS1 key gives its element string; another web
    URI gives its last path segment (``http://erp.example.com/po/4711`` → ``4711``); anything else as is.
    """
    if identifier.startswith("urn:epcglobal:cbv:bt:"):
        return identifier.rsplit(":", 1)[1] or identifier
    key = parse_gs1_key(identifier)
    if key is not None:
        return key.value
    if identifier.startswith(("https://", "http://")):
        segments = [segment for segment in urlsplit(identifier).path.split("/") if segment]
        if segments:
            return unquote(segments[-1])
    return identifier
