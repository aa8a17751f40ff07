"""Reference data: the carriers shipments and legs may name (the global ``carrier`` table).

``code`` is our key: the SCAC for ocean, road and rail carriers, the IATA airline designator for air
carriers, and a short code of our own for parcel carriers (several of them have no single SCAC).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (code, name, scac, iata_code, modes)
CARRIERS: list[tuple[str, str, str | None, str | None, list[str]]] = [
    # ocean (SCAC)
    ("MAEU", "Maersk", "MAEU", None, ["ocean"]),
    ("MSCU", "MSC Mediterranean Shipping Company", "MSCU", None, ["ocean"]),
    ("CMDU", "CMA CGM", "CMDU", None, ["ocean"]),
    ("HLCU", "Hapag-Lloyd", "HLCU", None, ["ocean"]),
    ("ONEY", "Ocean Network Express (ONE)", "ONEY", None, ["ocean"]),
    ("EGLV", "Evergreen Line", "EGLV", None, ["ocean"]),
    ("COSU", "COSCO Shipping Lines", "COSU", None, ["ocean"]),
    ("ZIMU", "ZIM Integrated Shipping Services", "ZIMU", None, ["ocean"]),
    # air (IATA airline designator)
    ("LH", "Lufthansa Cargo", None, "LH", ["air"]),
    ("EK", "Emirates SkyCargo", None, "EK", ["air"]),
    ("CX", "Cathay Cargo", None, "CX", ["air"]),
    ("QR", "Qatar Airways Cargo", None, "QR", ["air"]),
    ("5X", "UPS Airlines", None, "5X", ["air"]),
    ("FX", "FedEx Express", None, "FX", ["air"]),
    # road (SCAC)
    ("ODFL", "Old Dominion Freight Line", "ODFL", None, ["road"]),
    ("XPOL", "XPO", "XPOL", None, ["road"]),
    ("EXLA", "Estes Express Lines", "EXLA", None, ["road"]),
    ("SAIA", "Saia LTL Freight", "SAIA", None, ["road"]),
    ("ABFS", "ABF Freight", "ABFS", None, ["road"]),
    ("RLCA", "R+L Carriers", "RLCA", None, ["road"]),
    ("FXFE", "FedEx Freight", "FXFE", None, ["road"]),
    # parcel (our own short codes)
    ("UPS", "UPS", "UPSN", None, ["parcel"]),
    ("FDX", "FedEx", None, None, ["parcel"]),
    ("DHL", "DHL Express", None, None, ["parcel", "air"]),
    ("USPS", "United States Postal Service", None, None, ["parcel"]),
    ("CPC", "Canada Post", None, None, ["parcel"]),
    ("RMG", "Royal Mail", None, None, ["parcel"]),
    ("DPD", "DPD", None, None, ["parcel"]),
    # rail (SCAC)
    ("BNSF", "BNSF Railway", "BNSF", None, ["rail"]),
    ("CSXT", "CSX Transportation", "CSXT", None, ["rail"]),
]

_carrier = sa.table(
    "carrier",
    sa.column("code", sa.String),
    sa.column("name", sa.Text),
    sa.column("scac", sa.String),
    sa.column("iata_code", sa.String),
    sa.column("modes", postgresql.ARRAY(sa.Text)),
)


def upgrade() -> None:
    rows = [
        {"code": code, "name": name, "scac": scac, "iata_code": iata, "modes": modes}
        for code, name, scac, iata, modes in CARRIERS
    ]
    # a carrier someone added by hand before this migration keeps its row
    op.execute(postgresql.insert(_carrier).values(rows).on_conflict_do_nothing(index_elements=["code"]))


def downgrade() -> None:
    op.execute(_carrier.delete().where(_carrier.c.code.in_([row[0] for row in CARRIERS])))
