from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from domain.tracking.canonical import ParseIssue
from domain.tracking.formats.x12 import parse_x12
from domain.tracking.formats.x12.ts210 import ChargeLine, FreightInvoice, read_invoices
from tests.domain.formats.test_x12_tokenizer import interchange

UPS_210 = Path(__file__).parents[2] / "fixtures" / "x12" / "210_ups_omniparser.edi"
NOW = dt.datetime(2019, 11, 4, 12, tzinfo=dt.UTC)
# the UPS sample's first invoice says it has 46 segments; it has 48
UPS_SE_COUNT = ParseIssue(
    position="segment 50 (SE) element 01",
    code="x12.se_count_mismatch",
    reason="SE01 says '46' segments; transaction set 000158669 has 48 (ST to SE inclusive); the set is rejected",
    fatal=True,
)


def test_all_five_ups_invoices_reconcile() -> None:
    invoices, issues = read_invoices(UPS_210.read_bytes())
    assert issues == [UPS_SE_COUNT]
    assert [
        (
            invoice.invoice_number,
            invoice.net_amount_due,
            sum(line.charge for line in invoice.charges if line.charge is not None),
            invoice.total_charge,
            invoice.currency,
        )
        for invoice in invoices
    ] == [
        ("0000001808WW308", Decimal("17.00"), Decimal("17.00"), Decimal("17.00"), "USD"),
        ("0000001502WW308", Decimal("94.15"), Decimal("94.15"), Decimal("94.15"), "USD"),
        ("0000004045WW308", Decimal("285.55"), Decimal("285.55"), Decimal("285.55"), "USD"),
        ("0000002063WW308", Decimal("1056.47"), Decimal("1056.47"), Decimal("1056.47"), "USD"),
        ("0000004469WW318", Decimal("21642.90"), Decimal("21642.90"), Decimal("21642.90"), "CAD"),
    ]
    assert [invoice.reconciles() for invoice in invoices] == [True] * 5


def test_the_first_ups_invoice_in_full() -> None:
    invoices, _ = read_invoices(UPS_210.read_bytes())
    assert invoices[0] == FreightInvoice(
        position="segment 4 (B3)",
        transaction_set_control_number="000158669",
        invoice_number="0000001808WW308",
        shipment_id=None,
        payment_method="PP",
        invoice_date=dt.date(2008, 7, 26),
        net_amount_due=Decimal("17.00"),
        carrier_code="UPSN",
        currency="USD",
        charges=(
            ChargeLine("segment 21 (L1)", "1", Decimal("17.00"), "SAC"),
            ChargeLine("segment 27 (L1)", "2", Decimal("127.40"), "400"),
            ChargeLine("segment 28 (L1)", "2", Decimal("15.00"), "395"),
            ChargeLine("segment 29 (L1)", "2", Decimal("25.48"), "FUE"),
            ChargeLine("segment 30 (L1)", "2", Decimal("-12.74"), "295"),  # a credit line
            ChargeLine("segment 45 (L1)", "3", Decimal("-167.88"), "CDF"),
            ChargeLine("segment 46 (L1)", "3", Decimal("12.74"), "275"),
        ),
        total_charge=Decimal("17.00"),
        total_weight=None,
        references=(
            ("18", "0000980205"),
            ("ZZ", "NA"),
            ("CN", "1Z1808WW0473048017"),
            ("D2", "01"),
            ("LU", "BT170"),
            ("CR", "7803A-0005-0001-1"),
            ("CN", "1Z1808WW0473048017"),
            ("D2", "01"),
        ),
    )


def test_a_210_message_gives_no_events_and_no_error_of_its_own() -> None:
    message = parse_x12(UPS_210.read_bytes(), now=NOW)
    assert message.events == []
    assert message.issues == [UPS_SE_COUNT]  # the fixture's own envelope error, nothing about 210 content
    assert message.acknowledgment is not None
    assert message.acknowledgment.decode().split("|")[2:-4] == [
        "ST*997*0001",
        "AK1*IM*2767",
        "AK2*210*000158669",
        "AK5*R*4",
        "AK2*210*000158670",
        "AK5*A",
        "AK2*210*000158671",
        "AK5*A",
        "AK2*210*000158672",
        "AK5*A",
        "AK2*210*000158673",
        "AK5*A",
        "AK9*P*5*5*4",
    ]


def test_a_consistent_210_built_here() -> None:
    body = [
        "B3**INV1*SHIP1*CC**20191101*-250****ABCD",
        "C3*USD",
        "N9*BM*BL1",
        "LX*1",
        "L0*1*******1*PLT",
        "L1*1*12.5*PM*1000****400",
        "L1*1***-1250****DSC",
        "L11*PO1*PO",
        "L3*1200*G***-250",
    ]
    message = parse_x12(interchange(body, functional="IM", set_id="210").encode(), now=NOW)
    assert (message.events, message.issues) == ([], [])
    invoices, issues = read_invoices(interchange(body, functional="IM", set_id="210").encode())
    assert issues == []
    assert invoices == [
        FreightInvoice(
            position="segment 4 (B3)",
            transaction_set_control_number="0001",
            invoice_number="INV1",
            shipment_id="SHIP1",
            payment_method="CC",
            invoice_date=dt.date(2019, 11, 1),
            net_amount_due=Decimal("-2.50"),
            carrier_code="ABCD",
            currency="USD",
            charges=(
                ChargeLine("segment 9 (L1)", "1", Decimal("10.00"), "400", rate="12.5", rate_qualifier="PM"),
                ChargeLine("segment 10 (L1)", "1", Decimal("-12.50"), "DSC"),
            ),
            total_charge=Decimal("-2.50"),
            total_weight="1200",
            references=(("BM", "BL1"), ("PO", "PO1")),
        )
    ]
    assert invoices[0].reconciles() is True


def test_an_invoice_that_does_not_add_up_is_read_as_it_is() -> None:
    body = ["B3**INV1**PP**20191101*1000", "L1*1***900", "L3*****1000"]
    invoices, issues = read_invoices(interchange(body, functional="IM", set_id="210").encode())
    assert issues == []
    assert [(i.net_amount_due, i.charges_total, i.total_charge, i.reconciles()) for i in invoices] == [
        (Decimal("10.00"), Decimal("9.00"), Decimal("10.00"), False)
    ]


def test_bad_amounts_and_a_missing_b3() -> None:
    bad_amount = ["B3**INV1**PP**20191101*12.00", "L1*1***9X0"]
    no_b3 = ["C3*USD", "L1*1***900"]
    message = parse_x12(interchange(bad_amount, no_b3, functional="IM", set_id="210").encode(), now=NOW)
    assert message.issues == [
        ParseIssue(
            position="segment 4 (B3) element 07",
            code="x12.invalid_amount",
            reason="'12.00' is not an amount (digits, two implied decimals)",
        ),
        ParseIssue(
            position="segment 5 (L1) element 04",
            code="x12.invalid_amount",
            reason="'9X0' is not an amount (digits, two implied decimals)",
        ),
        ParseIssue(
            position="segment 7 (ST)",
            code="x12.b3_missing",
            reason="transaction set 0002 has no B3 (beginning segment for carrier's invoice); the set is rejected",
            fatal=True,
        ),
    ]
    assert message.acknowledgment is not None
    assert message.acknowledgment.decode().split("~")[3:-4] == [
        "AK1*IM*1",
        "AK2*210*0001",
        "AK3*B3*2**8",
        "AK4*7*193*6*12.00",
        "AK3*L1*3**8",
        "AK4*4*58*6*9X0",
        "AK5*E*5",
        "AK2*210*0002",
        "AK3*B3*2**3",
        "AK5*R*5",
        "AK9*P*2*2*1",
    ]
