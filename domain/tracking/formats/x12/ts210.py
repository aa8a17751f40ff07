"""X12 210 (Motor Carrier Freight Details and Invoice): the invoice facts finance reconciles against.

A 210 produces no tracking events. What is kept, as plain data: the invoice number and net amount due
(B3), the charge lines (L1), the totals (L3), the currency (C3) and every reference (N9 and L11,
qualifier and value, header and line level). Money elements have two implied decimals (``1700`` is 17.00,
``-1274`` a credit of 12.74). On a consistent invoice ``B3-07 == sum(L1-04) == L3-05``; this module reads,
it does not judge — :meth:`FreightInvoice.reconciles` says whether the three agree.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal

from domain.tracking.canonical import ParseIssue
from domain.tracking.formats.x12.tokenizer import (
    InterchangeReader,
    Segment,
    SegmentNote,
    TransactionSet,
)

_AMOUNT = re.compile(r"-?\d{1,18}")


@dataclass(frozen=True, slots=True)
class ChargeLine:
    position: str
    line_number: str | None  # L1-01, the lading line it charges for
    charge: Decimal | None  # L1-04
    charge_code: str | None  # L1-08, special charge or allowance code (element 150)
    rate: str | None = None  # L1-02 as written (its precision is the partner's)
    rate_qualifier: str | None = None  # L1-03


@dataclass(frozen=True, slots=True)
class FreightInvoice:
    position: str
    transaction_set_control_number: str
    invoice_number: str  # B3-02
    shipment_id: str | None  # B3-03
    payment_method: str | None  # B3-04 (PP prepaid, CC collect ...)
    invoice_date: dt.date | None  # B3-06
    net_amount_due: Decimal | None  # B3-07
    carrier_code: str | None  # B3-11 (SCAC)
    currency: str | None  # C3-01
    charges: tuple[ChargeLine, ...]
    total_charge: Decimal | None  # L3-05
    total_weight: str | None  # L3-01 as written
    references: tuple[tuple[str, str], ...]  # (qualifier, value) from N9 and L11, in message order

    @property
    def charges_total(self) -> Decimal:
        return sum((line.charge for line in self.charges if line.charge is not None), Decimal("0.00"))

    def reconciles(self) -> bool:
        return self.net_amount_due == self.charges_total == self.total_charge


@dataclass
class Parsed210:
    invoice: FreightInvoice | None = None
    issues: list[ParseIssue] = field(default_factory=list)
    notes: list[SegmentNote] = field(default_factory=list)
    fatal: bool = False


def _amount(value: str) -> Decimal | None:
    value = value.strip()
    if not _AMOUNT.fullmatch(value):
        return None
    return Decimal(value).scaleb(-2)


def _date(value: str) -> dt.date | None:
    value = value.strip()
    if not re.fullmatch(r"\d{8}", value):
        return None
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def parse_210(transaction_set: TransactionSet) -> Parsed210:
    result = Parsed210()
    b3: Segment | None = None
    net_amount_due: Decimal | None = None
    currency: str | None = None
    l3: Segment | None = None
    total_charge: Decimal | None = None
    charges: list[ChargeLine] = []
    references: list[tuple[str, str]] = []

    def amount(segment: Segment, element: int, reference: str) -> Decimal | None:
        raw = segment.get(element).strip()
        if not raw:
            return None
        value = _amount(raw)
        if value is None:
            result.notes.append(transaction_set.note(segment, "8", element, reference, "6", raw))
            result.issues.append(
                ParseIssue(
                    position=segment.position(element),
                    code="x12.invalid_amount",
                    reason=f"{raw!r} is not an amount (digits, two implied decimals)",
                )
            )
        return value

    for segment in transaction_set.segments[1:-1]:
        if segment.tag == "B3" and b3 is None:
            b3 = segment
            net_amount_due = amount(b3, 7, "193")
        elif segment.tag == "C3" and currency is None:
            currency = segment.get(1).strip() or None
        elif segment.tag == "L1":
            charges.append(
                ChargeLine(
                    position=segment.position(),
                    line_number=segment.get(1).strip() or None,
                    charge=amount(segment, 4, "58"),
                    charge_code=segment.get(8).strip() or None,
                    rate=segment.get(2).strip() or None,
                    rate_qualifier=segment.get(3).strip() or None,
                )
            )
        elif segment.tag == "L3":
            l3 = segment
            total_charge = amount(l3, 5, "58")
        elif segment.tag == "N9" and segment.get(2).strip():
            references.append((segment.get(1).strip(), segment.get(2).strip()))
        elif segment.tag == "L11" and segment.get(1).strip():
            references.append((segment.get(2).strip(), segment.get(1).strip()))

    if b3 is None:
        result.fatal = True
        result.notes.append(SegmentNote(tag="B3", position_in_set=2, segment_code="3"))
        result.issues.append(
            ParseIssue(
                position=transaction_set.segments[0].position(),
                code="x12.b3_missing",
                reason=f"transaction set {transaction_set.control_number} has no B3 (beginning segment for "
                "carrier's invoice); the set is rejected",
                fatal=True,
            )
        )
        return result
    result.invoice = FreightInvoice(
        position=b3.position(),
        transaction_set_control_number=transaction_set.control_number,
        invoice_number=b3.get(2).strip(),
        shipment_id=b3.get(3).strip() or None,
        payment_method=b3.get(4).strip() or None,
        invoice_date=_date(b3.get(6)),
        net_amount_due=net_amount_due,
        carrier_code=b3.get(11).strip() or None,
        currency=currency,
        charges=tuple(charges),
        total_charge=total_charge,
        total_weight=(l3.get(1).strip() or None) if l3 is not None else None,
        references=tuple(references),
    )
    return result


def read_invoices(body: bytes) -> tuple[list[FreightInvoice], list[ParseIssue]]:
    """Every 210 invoice of a message, with all issues found (envelope ones included) — for finance."""
    reader = InterchangeReader(body)
    invoices: list[FreightInvoice] = []
    for transaction_set in reader.transaction_sets():
        if transaction_set.set_id != "210":
            continue
        parsed = parse_210(transaction_set)
        reader.envelope.issues.extend(parsed.issues)
        if parsed.invoice is not None:
            invoices.append(parsed.invoice)
    return invoices, reader.envelope.issues
