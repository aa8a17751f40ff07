"""The demo: two seeded tenants with a few hundred shipments and a simulated carrier feed that moves them.

Three sections, each meant to be extended by later features:
- **reference data** for the generator (places, lanes, carriers' numbering schemes);
- **seed**: :func:`seed` creates the demo tenants once (detected by slug; a second run reuses them) through
  the domain services, as the application role, one transaction per tenant. It is deterministic: a seeded
  random generator and whole-minute offsets from ``now``;
- **feed**: :func:`run_feed` is a background task for ``milepost.runtime.serve`` that enqueues
  ``demo.advance_feed`` for shipments whose next milestone is due; the actor calls :func:`advance_shipments`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import structlog
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.db import TenantScope, apply_scope, scoped, scoped_transaction
from domain.exceptions.service import record_document
from domain.shipments.models import (
    Milestone,
    MilestoneCode,
    Mode,
    Priority,
    ReferenceKind,
    Shipment,
    ShipmentStatus,
)
from domain.shipments.service import PlannedLeg, PlannedMilestone, ShipmentDraft, create_shipment
from domain.shipments.templates import choose_template, plan_timeline
from domain.tenancy.models import ApiClient, Role, SlaTier
from domain.tenancy.service import (
    create_account,
    create_api_client,
    create_tenant,
    create_user,
    find_tenant_by_slug,
)
from domain.tracking.models import EventClassifier
from domain.tracking.service import NewEvent, record_event, record_events
from domain.workflow import service as workflow

if TYPE_CHECKING:
    from api.state import AppState

log = structlog.get_logger("milepost.demo")

DEMO_PASSWORD = "milepost-demo"  # noqa: S105 - documented: every demo user has it
DEMO_CLIENT_NAME = "Demo partner TMS"
DEMO_CLIENT_SCOPES = ("shipments:read", "exceptions:read", "ingest")
CREDENTIALS_FILE = "demo-credentials.json"
SHIPMENTS_PER_TENANT = 150
EVENT_SOURCE = "demo"

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


# ======================================================================================================
# Reference data
# ======================================================================================================


@dataclass(frozen=True)
class Place:
    name: str
    country: str
    utc_offset_minutes: int  # standard time; the demo ignores daylight saving


PLACES: dict[str, Place] = {
    # Asia
    "CNSHA": Place("Shanghai", "CN", 480),
    "CNNGB": Place("Ningbo", "CN", 480),
    "CNYTN": Place("Yantian", "CN", 480),
    "CNPVG": Place("Shanghai Pudong Apt", "CN", 480),
    "HKHKG": Place("Hong Kong", "HK", 480),
    "SGSIN": Place("Singapore", "SG", 480),
    "KRPUS": Place("Busan", "KR", 540),
    "TWKHH": Place("Kaohsiung", "TW", 480),
    "VNSGN": Place("Ho Chi Minh City", "VN", 420),
    "MYPKG": Place("Port Klang", "MY", 480),
    "LKCMB": Place("Colombo", "LK", 330),
    "AEDXB": Place("Dubai", "AE", 240),
    "QADOH": Place("Doha", "QA", 180),
    # Europe
    "NLRTM": Place("Rotterdam", "NL", 60),
    "NLAMS": Place("Amsterdam", "NL", 60),
    "DEHAM": Place("Hamburg", "DE", 60),
    "DEFRA": Place("Frankfurt am Main", "DE", 60),
    "DEBER": Place("Berlin", "DE", 60),
    "DEMUC": Place("Munich", "DE", 60),
    "DELEJ": Place("Leipzig", "DE", 60),
    "BEANR": Place("Antwerp", "BE", 60),
    "FRPAR": Place("Paris", "FR", 60),
    "ESALG": Place("Algeciras", "ES", 60),
    "GBFXT": Place("Felixstowe", "GB", 0),
    "GBLHR": Place("London Heathrow Apt", "GB", 0),
    "GBLON": Place("London", "GB", 0),
    "GBMNC": Place("Manchester", "GB", 0),
    "GBBHM": Place("Birmingham", "GB", 0),
    "GBEDI": Place("Edinburgh", "GB", 0),
    # North America
    "USLAX": Place("Los Angeles", "US", -480),
    "USLGB": Place("Long Beach", "US", -480),
    "USOAK": Place("Oakland", "US", -480),
    "USSEA": Place("Seattle", "US", -480),
    "USPDX": Place("Portland", "US", -480),
    "USPHX": Place("Phoenix", "US", -420),
    "USDEN": Place("Denver", "US", -420),
    "USSLC": Place("Salt Lake City", "US", -420),
    "USDAL": Place("Dallas", "US", -360),
    "USHOU": Place("Houston", "US", -360),
    "USCHI": Place("Chicago", "US", -360),
    "USMEM": Place("Memphis", "US", -360),
    "USMKC": Place("Kansas City", "US", -360),
    "USSDF": Place("Louisville", "US", -300),
    "USATL": Place("Atlanta", "US", -300),
    "USCLT": Place("Charlotte", "US", -300),
    "USDTT": Place("Detroit", "US", -300),
    "USJAX": Place("Jacksonville", "US", -300),
    "USMIA": Place("Miami", "US", -300),
    "USSAV": Place("Savannah", "US", -300),
    "USNYC": Place("New York", "US", -300),
    "USJFK": Place("New York JFK Apt", "US", -300),
    "USBOS": Place("Boston", "US", -300),
    "CATOR": Place("Toronto", "CA", -300),
    "CAMTR": Place("Montreal", "CA", -300),
    "CAVAN": Place("Vancouver", "CA", -480),
}

M = MilestoneCode

# What a carrier would have sent for each milestone, kept as the event's raw code (the codes our own mapping
# tables in domain/tracking/mappings turn into that milestone): DCSA for ocean, Cargo-IMP status for air,
# X12 214 AT7 for road and rail, AfterShip subtags for parcel. Anything else keeps the milestone code.
RAW_CODES: dict[str, dict[str, str]] = {
    Mode.OCEAN: {
        M.BOOKED: "CONF",
        M.PICKED_UP: "PICK",
        M.GATE_IN_ORIGIN: "GTIN",
        M.LOADED: "LOAD",
        M.DEPARTED: "DEPA",
        M.TRANSSHIPMENT_ARRIVED: "ARRI",
        M.TRANSSHIPMENT_DEPARTED: "DEPA",
        M.ARRIVED: "ARRI",
        M.DISCHARGED: "DISC",
        M.CUSTOMS_RELEASED: "RELS",
        M.AVAILABLE_FOR_PICKUP: "AVPU",
        M.GATE_OUT_DESTINATION: "GTOT",
        M.DELIVERED: "DROP",
    },
    Mode.AIR: {
        M.BOOKED: "BKD",
        M.GATE_IN_ORIGIN: "RCS",
        M.LOADED: "MAN",
        M.DEPARTED: "DEP",
        M.TRANSSHIPMENT_ARRIVED: "ARR",
        M.TRANSSHIPMENT_DEPARTED: "DEP",
        M.ARRIVED: "ARR",
        M.CUSTOMS_RELEASED: "CCD",
        M.AVAILABLE_FOR_PICKUP: "NFD",
        M.DELIVERED: "DLV",
    },
    Mode.ROAD: {
        M.BOOKED: "XB",
        M.PICKUP_ARRIVED: "X3",
        M.PICKED_UP: "AF",
        M.ARRIVED: "X1",
        M.OUT_FOR_DELIVERY: "X6",
        M.DELIVERED: "D1",
    },
    Mode.PARCEL: {
        M.BOOKED: "InfoReceived_001",
        M.PICKED_UP: "InTransit_002",
        M.DEPARTED: "InTransit_007",
        M.ARRIVED: "InTransit_004",
        M.OUT_FOR_DELIVERY: "OutForDelivery_001",
        M.DELIVERED: "Delivered_001",
    },
    Mode.RAIL: {
        M.BOOKED: "XB",
        M.GATE_IN_ORIGIN: "I1",
        M.DEPARTED: "RL",
        M.ARRIVED: "AR",
        M.AVAILABLE_FOR_PICKUP: "AV",
        M.GATE_OUT_DESTINATION: "OA",
        M.DELIVERED: "D1",
    },
}

# Ocean lanes: (origins, destinations, transit days (low, high), transshipment hubs, chance of one)
OCEAN_LANES: list[tuple[list[str], list[str], tuple[int, int], list[str], float]] = [
    (
        ["CNSHA", "CNNGB", "CNYTN", "HKHKG", "KRPUS", "TWKHH", "VNSGN"],
        ["NLRTM", "DEHAM", "BEANR", "GBFXT"],
        (28, 36),
        ["SGSIN", "LKCMB", "MYPKG"],
        0.35,
    ),
    (["CNSHA", "CNNGB", "CNYTN", "HKHKG", "TWKHH"], ["USLAX", "USLGB", "USOAK", "USSEA"], (13, 18), [], 0),
    (["CNSHA", "CNYTN", "SGSIN", "VNSGN"], ["USNYC", "USSAV"], (30, 36), ["LKCMB", "ESALG"], 0.4),
    (["DEHAM", "NLRTM", "BEANR"], ["USNYC", "USSAV", "USHOU"], (10, 16), [], 0),
]
OCEAN_CARRIERS = ["MAEU", "MSCU", "CMDU", "HLCU", "ONEY", "EGLV", "COSU", "ZIMU"]
CONTAINER_OWNER_CODES = {
    "MAEU": "MSKU",
    "MSCU": "MSCU",
    "CMDU": "CMAU",
    "HLCU": "HLXU",
    "ONEY": "ONEU",
    "EGLV": "EGHU",
    "COSU": "CSNU",
    "ZIMU": "ZIMU",
}
VESSELS = {
    "MAEU": ["Maersk Essen", "Mette Maersk", "Maersk Kinloss"],
    "MSCU": ["MSC Gulsun", "MSC Irina", "MSC Loreto"],
    "CMDU": ["CMA CGM Jacques Saade", "CMA CGM Marco Polo"],
    "HLCU": ["Berlin Express", "Hamburg Express"],
    "ONEY": ["ONE Innovation", "ONE Apus"],
    "EGLV": ["Ever Ace", "Ever Alot"],
    "COSU": ["COSCO Shipping Universe", "COSCO Shipping Aries"],
    "ZIMU": ["ZIM Kingston", "ZIM Sammy Ofer"],
}

# Air routes: (carrier, origin, hub airport or None, destination)
AIR_ROUTES: list[tuple[str, str, str | None, str]] = [
    ("LH", "CNPVG", None, "DEFRA"),
    ("LH", "HKHKG", "DEFRA", "USCHI"),
    ("LH", "CNPVG", "DEFRA", "USJFK"),
    ("LH", "DEFRA", None, "USCHI"),
    ("EK", "CNPVG", "AEDXB", "NLAMS"),
    ("EK", "HKHKG", "AEDXB", "GBLHR"),
    ("EK", "SGSIN", "AEDXB", "DEFRA"),
    ("CX", "HKHKG", None, "USLAX"),
    ("CX", "HKHKG", None, "USCHI"),
    ("CX", "SGSIN", "HKHKG", "USCHI"),
    ("CX", "HKHKG", None, "GBLHR"),
    ("QR", "SGSIN", "QADOH", "DEFRA"),
    ("QR", "HKHKG", "QADOH", "NLAMS"),
    ("QR", "CNPVG", "QADOH", "USCHI"),
    ("5X", "CNPVG", "USSDF", "USATL"),
    ("5X", "HKHKG", "USSDF", "USDAL"),
    ("FX", "CNPVG", "USMEM", "USDAL"),
    ("FX", "SGSIN", "USMEM", "USBOS"),
]
AWB_PREFIXES = {"LH": "020", "EK": "176", "CX": "160", "QR": "157", "5X": "406", "FX": "023"}
# flight numbers: carrier code, a leading digit, then this many random digits
FLIGHT_NUMBER_DIGITS: dict[str, tuple[str, int]] = {
    "LH": ("8", 3),
    "EK": ("9", 3),
    "CX": ("0", 2),
    "QR": ("8", 3),
    "5X": ("", 2),
    "FX": ("5", 3),
}

US_CITIES = [
    "USCHI", "USDAL", "USATL", "USLAX", "USNYC", "USHOU", "USDEN", "USSEA",
    "USPHX", "USMEM", "USCLT", "USMIA", "USBOS", "USDTT", "USSLC", "USPDX",
]  # fmt: skip
ROAD_CARRIERS = ["ODFL", "XPOL", "EXLA", "SAIA", "ABFS", "RLCA", "FXFE"]
# Parcel: (carrier, places it serves), domestic lanes except DHL Express (international)
PARCEL_NETWORKS: list[tuple[str, list[str], list[str]]] = [
    ("UPS", US_CITIES, US_CITIES),
    ("FDX", US_CITIES, US_CITIES),
    ("USPS", US_CITIES, US_CITIES),
    ("DHL", ["DEBER", "GBLON", "HKHKG", "DEMUC", "FRPAR"], ["USNYC", "USCHI", "CATOR", "USLAX"]),
    ("CPC", ["CATOR", "CAMTR", "CAVAN"], ["CATOR", "CAMTR", "CAVAN"]),
    ("RMG", ["GBLON", "GBMNC", "GBBHM", "GBEDI"], ["GBLON", "GBMNC", "GBBHM", "GBEDI"]),
    ("DPD", ["DEHAM", "DEBER", "DEMUC", "NLAMS", "FRPAR"], ["DEHAM", "DEBER", "DEMUC", "NLAMS", "FRPAR"]),
]
RAIL_ROUTES: list[tuple[str, str, str]] = [
    ("BNSF", "USLAX", "USCHI"),
    ("BNSF", "USLGB", "USCHI"),
    ("BNSF", "USSEA", "USCHI"),
    ("BNSF", "USLAX", "USDAL"),
    ("BNSF", "USLAX", "USMKC"),
    ("CSXT", "USCHI", "USATL"),
    ("CSXT", "USCHI", "USJAX"),
    ("CSXT", "USNYC", "USCHI"),
]


def iso6346_check_digit(owner_and_serial: str) -> int:
    """The check digit of a container number (ISO 6346) from its first ten characters, e.g. ``MSKU123456``."""
    values: dict[str, int] = {}
    value = 10
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if value % 11 == 0:  # multiples of 11 are skipped
            value += 1
        values[letter] = value
        value += 1
    total = sum(
        (values[c] if c.isalpha() else int(c)) << position for position, c in enumerate(owner_and_serial)
    )
    return total % 11 % 10


def container_number(owner_code: str, serial: int) -> str:
    body = f"{owner_code}{serial:06d}"
    return f"{body}{iso6346_check_digit(body)}"


def air_waybill(prefix: str, serial: int) -> str:
    """An air waybill number: airline prefix, seven-digit serial and its check digit (serial modulo 7)."""
    return f"{prefix}-{serial:07d}{serial % 7}"


def s10_tracking_number(service: str, serial: int, country: str) -> str:
    """A UPU S10 item number (Royal Mail, Canada Post international), e.g. ``RB123456785GB``."""
    digits = f"{serial:08d}"
    total = sum(int(d) * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - total % 11
    check = 0 if check == 10 else 5 if check == 11 else check
    return f"{service}{digits}{check}{country}"


def ups_tracking_number(shipper: str, service: str, package: int) -> str:
    """A UPS 1Z number with its check digit (letters count as ``(ord - 63) % 10``, every second doubled)."""
    body = f"{shipper}{service}{package:07d}"
    values = [int(c) if c.isdigit() else (ord(c) - 63) % 10 for c in body]
    total = sum(v * (2 if i % 2 else 1) for i, v in enumerate(values))
    return f"1Z{body}{(10 - total % 10) % 10}"


# ======================================================================================================
# Seed
# ======================================================================================================


@dataclass(frozen=True)
class AccountPlan:
    code: str
    name: str
    sla_tier: SlaTier
    shipper_email: str
    shipper_name: str
    weight: float  # share of the tenant's shipments


@dataclass(frozen=True)
class TenantPlan:
    slug: str
    name: str
    email_domain: str
    house_bl_prefix: str
    modes: tuple[tuple[Mode, float], ...]
    accounts: tuple[AccountPlan, ...]
    staff: tuple[tuple[Role, str, str], ...]  # role, e-mail local part, name
    # team, its members' roles, the modes its auto-assignment rule takes (lead: operations; manager: admin)
    teams: tuple[tuple[str, tuple[Role, ...], tuple[Mode, ...]], ...]

    def staff_email(self, local_part: str) -> str:
        return f"{local_part}@{self.email_domain}"


def _staff(names: Sequence[str]) -> tuple[tuple[Role, str, str], ...]:
    local_parts = ("ops", "cs", "docs", "sales", "finance", "admin")
    roles = (
        Role.OPERATIONS,
        Role.CUSTOMER_SERVICE,
        Role.DOCUMENTATION,
        Role.SALES,
        Role.FINANCE,
        Role.ADMIN,
    )
    return tuple(zip(roles, local_parts, names, strict=True))


DEMO_TENANTS: tuple[TenantPlan, ...] = (
    TenantPlan(
        slug="northwind",
        name="Northwind Forwarding",
        email_domain="northwind.example",
        house_bl_prefix="NWF",
        modes=((Mode.OCEAN, 0.55), (Mode.AIR, 0.35), (Mode.ROAD, 0.10)),
        accounts=(
            AccountPlan(
                "ACME", "Acme Electronics", SlaTier.PLATINUM, "logistics@acme.example", "Jordan Lee", 0.35
            ),
            AccountPlan(
                "BLUEWATER",
                "Bluewater Apparel",
                SlaTier.GOLD,
                "shipping@bluewater.example",
                "Maya Ortiz",
                0.3,
            ),
            AccountPlan(
                "CASCADE", "Cascade Furniture", SlaTier.SILVER, "imports@cascade.example", "Noah Berg", 0.2
            ),
            AccountPlan(
                "DELTA", "Delta Auto Parts", SlaTier.STANDARD, "supply@deltaauto.example", "Ava Kim", 0.15
            ),
        ),
        staff=_staff(["Priya Raman", "Tom Becker", "Ana Souza", "Liam O'Connor", "Mei Chen", "Sam Adler"]),
        teams=(
            ("Ocean Desk", (Role.OPERATIONS, Role.DOCUMENTATION), (Mode.OCEAN,)),
            ("Air Desk", (Role.OPERATIONS, Role.CUSTOMER_SERVICE), (Mode.AIR,)),
        ),
    ),
    TenantPlan(
        slug="harbor-3pl",
        name="Harbor 3PL",
        email_domain="harbor-3pl.example",
        house_bl_prefix="HBR",
        modes=((Mode.ROAD, 0.45), (Mode.PARCEL, 0.45), (Mode.RAIL, 0.10)),
        accounts=(
            AccountPlan(
                "GRANITE",
                "Granite Health Supplies",
                SlaTier.PLATINUM,
                "ops@granitehealth.example",
                "Elena Petrova",
                0.4,
            ),
            AccountPlan(
                "FJORD",
                "Fjord Outdoor Gear",
                SlaTier.GOLD,
                "fulfilment@fjordgear.example",
                "Oskar Lind",
                0.35,
            ),
            AccountPlan(
                "MAPLE", "Maple Street Home", SlaTier.STANDARD, "orders@maplestreet.example", "Grace Wu", 0.25
            ),
        ),
        staff=_staff(
            ["Diego Alvarez", "Hannah Scott", "Kofi Mensah", "Rita Novak", "Victor Huang", "Julia Frey"]
        ),
        teams=(
            ("Road & Rail Desk", (Role.OPERATIONS, Role.CUSTOMER_SERVICE), (Mode.ROAD, Mode.RAIL)),
            ("Parcel Desk", (Role.OPERATIONS, Role.CUSTOMER_SERVICE, Role.DOCUMENTATION), (Mode.PARCEL,)),
        ),
    ),
)


@dataclass(frozen=True)
class SeededTenant:
    """What ``milepost demo`` prints about one demo tenant."""

    slug: str
    name: str
    tenant_id: uuid.UUID
    created: bool
    staff: list[tuple[str, str]]  # (e-mail, role)
    shippers: list[tuple[str, str]]  # (e-mail, account name)
    client_id: str | None
    client_secret: str | None = None  # only when this run created the client: it is never stored


@dataclass(frozen=True)
class _Route:
    carrier: str
    origin: str
    hub: str | None
    destination: str
    first_transit: dt.timedelta  # departure to the hub, or to the destination without one
    second_transit: dt.timedelta  # hub to destination


@dataclass(frozen=True)
class _Timeline:
    """One generated shipment before it is stored: the draft, and how its carrier is going to perform."""

    draft: ShipmentDraft
    booked_at: dt.datetime
    deviations: list[dt.timedelta]  # per milestone: actual minus plan, before delays carried over
    report_lags: list[dt.timedelta]  # per milestone: how long after the fact the carrier reports it


T = TypeVar("T")


# what the default DOCUMENTS_MISSING rule asks for, per mode, and the share shippers send in time
DOCUMENTS = {"ocean": ("commercial_invoice", "packing_list"), "air": ("commercial_invoice",)}
DOCUMENTS_ON_TIME = 0.85


def _pick_weighted(rng: random.Random, choices: Sequence[tuple[T, float]]) -> T:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _minutes(rng: random.Random, low_hours: float, high_hours: float) -> dt.timedelta:
    return dt.timedelta(minutes=rng.randint(round(low_hours * 60), round(high_hours * 60)))


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _route(rng: random.Random, mode: str) -> _Route:
    zero = dt.timedelta(0)
    if mode == Mode.OCEAN:
        origins, destinations, (low, high), hubs, hub_chance = rng.choice(OCEAN_LANES)
        origin, destination = rng.choice(origins), rng.choice(destinations)
        hub_choices = [h for h in hubs if h != origin]
        hub = rng.choice(hub_choices) if hub_choices and rng.random() < hub_chance else None
        transit = dt.timedelta(days=rng.randint(low, high), hours=rng.randint(0, 23))
        carrier = rng.choice(OCEAN_CARRIERS)
        if hub is None:
            return _Route(carrier, origin, None, destination, transit, zero)
        first = dt.timedelta(minutes=int(transit.total_seconds() // 60 * rng.uniform(0.35, 0.6)))
        return _Route(carrier, origin, hub, destination, first, transit - first)
    if mode == Mode.AIR:
        carrier, origin, air_hub, destination = rng.choice(AIR_ROUTES)
        first = _minutes(rng, 6, 14)
        second = _minutes(rng, 3, 12) if air_hub else zero
        return _Route(carrier, origin, air_hub, destination, first, second)
    if mode == Mode.RAIL:
        carrier, origin, destination = rng.choice(RAIL_ROUTES)
        return _Route(carrier, origin, None, destination, _minutes(rng, 72, 120), zero)
    if mode == Mode.PARCEL:
        carrier, origins, destinations = rng.choice(PARCEL_NETWORKS)
        origin = rng.choice(origins)
        destination = rng.choice([d for d in destinations if d != origin])
        return _Route(carrier, origin, None, destination, _minutes(rng, 12, 72), zero)
    origin = rng.choice(US_CITIES)
    destination = rng.choice([c for c in US_CITIES if c != origin])
    return _Route(rng.choice(ROAD_CARRIERS), origin, None, destination, _minutes(rng, 12, 96), zero)


def _legs(rng: random.Random, mode: str, route: _Route) -> list[PlannedLeg]:
    stops = [route.origin, route.hub, route.destination] if route.hub else [route.origin, route.destination]
    legs = []
    voyage = f"{rng.randint(100, 999)}{rng.choice('EWNS')}"
    for sequence, (start, end) in enumerate(itertools.pairwise(stops), start=1):
        leg = PlannedLeg(sequence=sequence, mode=mode, origin_locode=start, destination_locode=end)
        if mode == Mode.OCEAN:
            vessel = rng.choice(VESSELS[route.carrier])
            leg = replace(leg, carrier_code=route.carrier, vessel_name=vessel, voyage_number=voyage)
        elif mode == Mode.AIR:
            lead, width = FLIGHT_NUMBER_DIGITS[route.carrier]
            flight = f"{route.carrier}{lead}{_digits(rng, width)}"
            leg = replace(leg, carrier_code=route.carrier, flight_number=flight)
        else:
            leg = replace(leg, carrier_code=route.carrier)
        legs.append(leg)
    return legs


# Which leg a milestone belongs to: departure-side steps to the first, arrival-side to the last.
_FIRST_LEG = {M.GATE_IN_ORIGIN, M.LOADED, M.DEPARTED, M.PICKED_UP, M.TRANSSHIPMENT_ARRIVED}
_LAST_LEG = {M.TRANSSHIPMENT_DEPARTED, M.ARRIVED, M.DISCHARGED}


def _references(
    rng: random.Random, plan: TenantPlan, mode: str, route: _Route, number: int
) -> list[tuple[str, str]]:
    po = (ReferenceKind.CUSTOMER_REFERENCE, f"PO-{rng.randint(10000, 99999)}")
    if mode == Mode.OCEAN:
        containers = [
            (
                ReferenceKind.CONTAINER,
                container_number(CONTAINER_OWNER_CODES[route.carrier], rng.randrange(10**6)),
            )
            for _ in range(rng.choice([1, 1, 1, 2, 2, 3]))
        ]
        return [
            (ReferenceKind.BOOKING, f"{route.carrier[:3]}{_digits(rng, 7)}"),
            (ReferenceKind.MASTER_BL, f"{route.carrier}{_digits(rng, 9)}"),
            (ReferenceKind.HOUSE_BL, f"{plan.house_bl_prefix}{route.origin[2:]}{number:06d}"),
            *containers,
            po,
        ]
    if mode == Mode.AIR:
        return [
            (ReferenceKind.BOOKING, f"{plan.house_bl_prefix}A{number:06d}"),
            (ReferenceKind.AIR_WAYBILL, air_waybill(AWB_PREFIXES[route.carrier], rng.randrange(10**7))),
            po,
        ]
    if mode == Mode.PARCEL:
        tracking = {
            "UPS": lambda: ups_tracking_number(
                "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXY") for _ in range(6)),
                rng.choice(["01", "02", "03"]),
                rng.randrange(10**7),
            ),
            "FDX": lambda: _digits(rng, 12),
            "USPS": lambda: "9400" + _digits(rng, 18),
            "DHL": lambda: _digits(rng, 10),
            "CPC": lambda: _digits(rng, 16),
            "RMG": lambda: s10_tracking_number(rng.choice(["RB", "RC", "RD"]), rng.randrange(10**8), "GB"),
            "DPD": lambda: _digits(rng, 14),
        }[route.carrier]()
        return [
            (ReferenceKind.TRACKING_NUMBER, tracking),
            (ReferenceKind.CUSTOMER_REFERENCE, f"SO-{rng.randint(100000, 999999)}"),
        ]
    if mode == Mode.RAIL:
        owner = rng.choice(["JBHU", "EMHU", "HGIU"])
        return [
            (ReferenceKind.BOOKING, f"{route.carrier}{_digits(rng, 8)}"),
            (ReferenceKind.CONTAINER, container_number(owner, rng.randrange(10**6))),
            po,
        ]
    return [(ReferenceKind.PRO, _digits(rng, 10)), (ReferenceKind.BOOKING, f"BOL{_digits(rng, 8)}"), po]


# service levels with a built-in milestone template (domain.shipments.templates); the others use the mode's
SERVICE_LEVELS: dict[str, list[tuple[str, float]]] = {
    Mode.OCEAN: [("FCL", 0.8), ("LCL", 0.2)],
    Mode.AIR: [("standard", 0.7), ("express", 0.3)],
    Mode.ROAD: [("LTL", 0.7), ("FTL", 0.3)],
    Mode.PARCEL: [("standard", 0.8), ("express", 0.2)],
    Mode.RAIL: [("standard", 1.0)],
}


def _priority(rng: random.Random, tier: str) -> Priority:
    if tier == SlaTier.PLATINUM:
        return _pick_weighted(rng, [(Priority.NORMAL, 0.6), (Priority.HIGH, 0.3), (Priority.CRITICAL, 0.1)])
    return _pick_weighted(rng, [(Priority.LOW, 0.1), (Priority.NORMAL, 0.8), (Priority.HIGH, 0.1)])


_REFERENCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # plans are made relative to this, then moved


def _planned_offsets(
    rng: random.Random, mode: str, service_level: str, route: _Route
) -> list[tuple[PlannedMilestone, dt.timedelta]]:
    """The mode's milestone template, stretched a little per shipment so timelines are not all alike, with
    a transshipment call where the route has a hub; each milestone with its offset from the booking."""
    steps = choose_template(mode, service_level)
    # one stretch per side keeps the template's order; the gap between ETD and ETA must hold the steps
    # anchored on each (e.g. an LTL departure 8 h after ETD, its arrival 12 h before ETA)
    stretch = {"etd": rng.uniform(0.8, 1.25), "eta": rng.uniform(0.8, 1.25)}
    steps = tuple(replace(step, offset_hours=step.offset_hours * stretch[step.anchor]) for step in steps)
    after_etd = max([s.offset_hours for s in steps if s.anchor == "etd"] + [0])
    before_eta = min([s.offset_hours for s in steps if s.anchor == "eta"] + [0])
    dwell = _minutes(rng, 24, 96) if mode == Mode.OCEAN else _minutes(rng, 4, 20)
    transit = route.first_transit + (dwell + route.second_transit if route.hub else dt.timedelta(0))
    transit = max(transit, dt.timedelta(hours=after_etd - before_eta + rng.uniform(2, 10)))
    etd = _REFERENCE
    planned = plan_timeline(
        steps,
        etd=etd,
        eta=etd + transit,
        origin_locode=route.origin,
        destination_locode=route.destination,
    )
    if route.hub is not None:
        departed = next(i for i, m in enumerate(planned) if m.code == M.DEPARTED)
        hub_arrival = etd + route.first_transit
        planned[departed + 1 : departed + 1] = [
            PlannedMilestone(M.TRANSSHIPMENT_ARRIVED, hub_arrival, route.hub),
            PlannedMilestone(M.TRANSSHIPMENT_DEPARTED, hub_arrival + dwell, route.hub),
        ]
    booked = planned[0].planned_at
    assert booked is not None
    result = []
    for milestone in planned:
        assert milestone.planned_at is not None
        offset = dt.timedelta(minutes=int((milestone.planned_at - booked).total_seconds() // 60))
        result.append((milestone, offset))
    return result


def _plan_shipment(
    rng: random.Random, plan: TenantPlan, account_ids: Sequence[uuid.UUID], number: int, now: dt.datetime
) -> _Timeline:
    mode = _pick_weighted(rng, plan.modes)
    account_index = _pick_weighted(rng, [(i, a.weight) for i, a in enumerate(plan.accounts)])
    route = _route(rng, mode)
    service_level = _pick_weighted(rng, SERVICE_LEVELS[mode])
    planned = _planned_offsets(rng, mode, service_level, route)
    offsets = [offset for _, offset in planned]

    # A third of the shipments have a milestone coming due in the next ninety minutes, so the feed has news
    # while someone watches; the others are spread from weeks ago (delivered) to weeks ahead.
    if rng.random() < 0.35:
        anchor = rng.randrange(1, len(offsets))
        booked_at = now + dt.timedelta(minutes=rng.randint(1, 90)) - offsets[anchor]
    else:
        booked_at = now - dt.timedelta(
            minutes=rng.randint(0, int(offsets[-1].total_seconds() // 60 * 3 // 2))
        )

    legs = _legs(rng, mode, route)
    milestones = [
        replace(
            milestone,
            planned_at=booked_at + offset,
            leg_sequence=1
            if milestone.code in _FIRST_LEG
            else len(legs)
            if milestone.code in _LAST_LEG
            else None,
        )
        for milestone, offset in planned
    ]

    # how the carrier performs: mostly within ±90 minutes; about a third of the shipments have one
    # incident (a rolled booking, a missed connection, a blank sailing) whose delay carries forward
    incident = rng.randrange(1, len(milestones)) if rng.random() < 0.35 else -1
    incident_hours = {Mode.OCEAN: (24, 120), Mode.AIR: (6, 48), Mode.RAIL: (12, 72)}.get(mode, (4, 36))
    deviations = [
        dt.timedelta(0)
        if index == 0
        else _minutes(rng, *incident_hours)
        if index == incident
        else dt.timedelta(minutes=rng.randint(-90, 90))
        for index in range(len(milestones))
    ]
    # carriers report late, some by hours: what happened but is not reported yet is the feed's first news
    report_lags = [dt.timedelta(0)] + [dt.timedelta(minutes=rng.randint(0, 480)) for _ in milestones[1:]]

    origin, destination = PLACES[route.origin], PLACES[route.destination]
    account = plan.accounts[account_index]
    draft = ShipmentDraft(
        account_id=account_ids[account_index],
        mode=mode,
        references=_references(rng, plan, mode, route, number),
        carrier_code=route.carrier,
        service_level=service_level,
        origin_locode=route.origin,
        destination_locode=route.destination,
        origin_address={"city": origin.name, "country": origin.country},
        destination_address={"city": destination.name, "country": destination.country},
        promised_delivery_at=booked_at + offsets[-1] + dt.timedelta(hours=rng.choice([0, 12, 24, 48])),
        declared_value=Decimal(rng.randint(20, 2500) * 100),
        declared_value_currency="EUR" if origin.country in {"DE", "NL", "BE", "FR", "ES"} else "USD",
        priority=_priority(rng, account.sla_tier),
        legs=legs,
        milestones=milestones,
    )
    return _Timeline(draft=draft, booked_at=booked_at, deviations=deviations, report_lags=report_lags)


def simulated_time(
    planned: dt.datetime,
    deviation: dt.timedelta,
    previous_planned: dt.datetime | None = None,
    previous_actual: dt.datetime | None = None,
) -> dt.datetime:
    """When a milestone happens in the simulation: its plan plus its own deviation, but no earlier than most
    of the previous milestone's delay allows (delays carry forward) and never before the previous one."""
    at = planned + deviation
    if previous_planned is not None and previous_actual is not None:
        delay = previous_actual - previous_planned
        if delay > dt.timedelta(0):
            at = max(at, planned + delay * 0.85)
        at = max(at, previous_actual + 15 * MINUTE)
    return at.replace(second=0, microsecond=0)


def _event(
    mode: str,
    code: str,
    locode: str | None,
    classifier: EventClassifier,
    at: dt.datetime,
    source_event_id: str | None = None,
) -> NewEvent:
    place = PLACES.get(locode) if locode else None
    return NewEvent(
        source=EVENT_SOURCE,
        source_event_id=source_event_id,
        classifier=classifier,
        milestone_code=code,
        raw_code=RAW_CODES[mode].get(code, code),
        occurred_at=at,
        location_locode=locode,
        location_name=place.name if place else None,
        utc_offset_minutes=place.utc_offset_minutes if place else None,
    )


def _seed_events(timeline: _Timeline, now: dt.datetime) -> list[NewEvent]:
    """The actuals already reported by ``now`` (in order, stopping at the first one not reported yet) and,
    when that one is running late, the carrier's estimate for it."""
    events = []
    previous: tuple[dt.datetime, dt.datetime] | None = None
    for index, milestone in enumerate(timeline.draft.milestones):
        assert milestone.planned_at is not None
        at = simulated_time(milestone.planned_at, timeline.deviations[index], *(previous or (None, None)))
        if at <= now - timeline.report_lags[index]:
            events.append(
                _event(
                    timeline.draft.mode, milestone.code, milestone.location_locode, EventClassifier.ACTUAL, at
                )
            )
            previous = (milestone.planned_at, at)
            continue
        if at > now and at > milestone.planned_at + HOUR:
            events.append(
                _event(
                    timeline.draft.mode,
                    milestone.code,
                    milestone.location_locode,
                    EventClassifier.ESTIMATED,
                    at,
                )
            )
        break
    return events


async def seed(
    sessions: async_sessionmaker[AsyncSession],
    *,
    now: dt.datetime | None = None,
    tenants: Sequence[TenantPlan] = DEMO_TENANTS,
) -> list[SeededTenant]:
    """Create the demo tenants that do not exist yet (one transaction each) and describe all of them.

    Runs as the application role, so row-level security applies to every row it writes.
    """
    now = (now or dt.datetime.now(dt.UTC)).replace(second=0, microsecond=0)
    seeded = []
    for plan in tenants:
        async with sessions() as session, session.begin():
            existing = await find_tenant_by_slug(session, plan.slug)
            if existing is None:
                seeded.append(await _seed_tenant(session, plan, now))
            else:
                seeded.append(await _describe_tenant(session, plan, existing.id))
    return seeded


def _people(plan: TenantPlan) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    staff = [(plan.staff_email(local), str(role)) for role, local, _ in plan.staff]
    shippers = [(account.shipper_email, account.name) for account in plan.accounts]
    return staff, shippers


async def _seed_tenant(session: AsyncSession, plan: TenantPlan, now: dt.datetime) -> SeededTenant:
    started = time.perf_counter()
    tenant = await create_tenant(session, plan.name, plan.slug)
    scope = TenantScope(tenant.id)
    accounts = [
        await create_account(session, scope, code=a.code, name=a.name, sla_tier=a.sla_tier)
        for a in plan.accounts
    ]
    staff_ids: dict[Role, uuid.UUID] = {}
    for role, local_part, name in plan.staff:
        user = await create_user(
            session,
            scope,
            email=plan.staff_email(local_part),
            name=name,
            password=DEMO_PASSWORD,
            roles=[role],
        )
        staff_ids[role] = user.id
    for account_plan, account in zip(plan.accounts, accounts, strict=True):
        await create_user(
            session,
            scope,
            email=account_plan.shipper_email,
            name=account_plan.shipper_name,
            password=DEMO_PASSWORD,
            roles=[Role.SHIPPER],
            account_id=account.id,
        )
    for position, (team_name, roles, modes) in enumerate(plan.teams, start=1):
        team = await workflow.create_team(
            session,
            scope,
            name=team_name,
            role=Role.OPERATIONS,
            lead_user_id=staff_ids[Role.OPERATIONS],
            manager_user_id=staff_ids[Role.ADMIN],
            member_ids=[staff_ids[r] for r in roles],
        )
        rule = workflow.AssignmentRuleDraft(
            team_name, position, {"modes": [str(m) for m in modes]}, team_id=team.id
        )
        await workflow.upsert_assignment_rule(session, scope, rule)
    issued = await create_api_client(session, scope, name=DEMO_CLIENT_NAME, scopes=DEMO_CLIENT_SCOPES)

    rng = random.Random(f"milepost-demo/{plan.slug}")  # noqa: S311 - demo data, not secrets
    # documents draw from their own sequence, so the shipments stay what they were before documents existed
    paperwork = random.Random(f"milepost-demo/{plan.slug}/documents")  # noqa: S311 - demo data
    account_ids = [a.id for a in accounts]
    for number in range(1, SHIPMENTS_PER_TENANT + 1):
        timeline = _plan_shipment(rng, plan, account_ids, number, now)
        shipment = await create_shipment(session, scope, timeline.draft)
        shipment.created_at = timeline.booked_at  # listed as booked, not as seeded
        await record_events(session, scope, shipment.id, _seed_events(timeline, now), now=now)
        for document in DOCUMENTS.get(shipment.mode, ()):
            if paperwork.random() < DOCUMENTS_ON_TIME:  # the rest are the documentation team's work
                received = min(now, timeline.booked_at + _minutes(paperwork, 2, 40))
                await record_document(
                    session, scope, shipment.id, document, received_at=received, source="demo"
                )
    log.info("demo tenant seeded", tenant=plan.slug, seconds=round(time.perf_counter() - started, 2))
    staff, shippers = _people(plan)
    return SeededTenant(
        slug=plan.slug,
        name=plan.name,
        tenant_id=tenant.id,
        created=True,
        staff=staff,
        shippers=shippers,
        client_id=issued.client.client_id,
        client_secret=issued.client_secret,
    )


async def _describe_tenant(session: AsyncSession, plan: TenantPlan, tenant_id: uuid.UUID) -> SeededTenant:
    scope = TenantScope(tenant_id)
    await apply_scope(session, scope)
    client_id = (
        await session.execute(
            scoped(select(ApiClient.client_id), ApiClient, scope)
            .where(ApiClient.name == DEMO_CLIENT_NAME, ApiClient.revoked_at.is_(None))
            .order_by(ApiClient.created_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    staff, shippers = _people(plan)
    return SeededTenant(
        slug=plan.slug,
        name=plan.name,
        tenant_id=tenant_id,
        created=False,
        staff=staff,
        shippers=shippers,
        client_id=client_id,
    )


def remember_credentials(data_dir: Path, seeded: Sequence[SeededTenant]) -> dict[str, dict[str, str]]:
    """Keep newly issued demo client secrets in ``data_dir/demo-credentials.json`` (mode 0600) and return
    everything the file knows, so later runs can print the secret that was only shown at creation."""
    path = data_dir / CREDENTIALS_FILE
    stored: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}
    fresh = {
        t.slug: {"client_id": t.client_id, "client_secret": t.client_secret}
        for t in seeded
        if t.client_id and t.client_secret
    }
    if fresh:
        stored.update(fresh)
        data_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(stored, file, indent=2)
        os.chmod(partial, 0o600)  # O_CREAT's mode does not apply to a file left over from a crash
        os.replace(partial, path)
    return stored


def banner(
    seeded: Sequence[SeededTenant],
    credentials: dict[str, dict[str, str]],
    *,
    base_url: str,
    feed_interval_seconds: float,
    workers: str,
) -> str:
    """What ``milepost demo`` prints: where to go and how to log in."""
    lines = [
        "",
        "Milepost demo",
        "",
        f"  API (GraphQL)  {base_url}/graphql",
        f"  Portal         {base_url}/portal/",
        f"  Health         {base_url}/healthz",
        "",
        f"  Every demo user's password: {DEMO_PASSWORD}",
    ]
    for tenant in seeded:
        lines += ["", f"  Tenant {tenant.slug} ({tenant.name})" + ("" if tenant.created else ", reused")]
        lines += [f"    staff    {email:<34} {role}" for email, role in tenant.staff]
        lines += [f"    shipper  {email:<34} {account}" for email, account in tenant.shippers]
        lines.append(f"    partner API client (scopes: {' '.join(DEMO_CLIENT_SCOPES)})")
        known = credentials.get(tenant.slug, {})
        if tenant.client_id is None:
            lines.append("      none: it was revoked or deleted")
        elif known.get("client_id") == tenant.client_id:
            lines += [
                f"      client_id      {tenant.client_id}",
                f"      client_secret  {known['client_secret']}",
            ]
        else:
            lines += [
                f"      client_id      {tenant.client_id}",
                f"      client_secret  (shown only when it was created; {CREDENTIALS_FILE} does not have it:",
                f"                     `milepost client create --tenant {tenant.slug} "
                f'--scopes "{" ".join(DEMO_CLIENT_SCOPES)}"` issues a new one)',
            ]
    lines += [
        "",
        f"  Simulated carrier feed every {feed_interval_seconds:g} s; workers: {workers}",
        "  Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


# ======================================================================================================
# Feed
# ======================================================================================================

FEED_SHIPMENTS_PER_TENANT = 3
_OPEN_STATUSES = (ShipmentStatus.BOOKED, ShipmentStatus.IN_TRANSIT)


def feed_deviation(milestone_id: uuid.UUID) -> dt.timedelta:
    """How far from plan the simulated carrier performs a milestone; the same answer every time."""
    rng = random.Random(str(milestone_id))  # noqa: S311 - a simulation, not secrets
    draw = rng.random()
    if draw < 0.7:
        return dt.timedelta(minutes=rng.randint(-60, 60))
    if draw < 0.92:
        return dt.timedelta(minutes=rng.randint(120, 720))
    return dt.timedelta(minutes=rng.randint(1440, 4320))


async def demo_tenant_ids(
    sessions: async_sessionmaker[AsyncSession], tenants: Sequence[TenantPlan] = DEMO_TENANTS
) -> list[uuid.UUID]:
    found = []
    for plan in tenants:
        async with sessions() as session, session.begin():
            tenant = await find_tenant_by_slug(session, plan.slug)
            if tenant is not None:
                found.append(tenant.id)
    return found


async def due_shipments(
    session: AsyncSession, scope: TenantScope, now: dt.datetime, limit: int = FEED_SHIPMENTS_PER_TENANT
) -> list[uuid.UUID]:
    """Open shipments whose next milestone (the first one without an actual) is due by ``now``, most
    overdue first. Only the next milestone counts: a later one past its plan waits for its turn."""
    open_shipments = scoped(select(Shipment.id), Shipment, scope).where(Shipment.status.in_(_OPEN_STATUSES))
    due_at = func.coalesce(Milestone.estimated_at, Milestone.planned_at)
    next_milestones = (
        scoped(select(Milestone.shipment_id), Milestone, scope)
        .add_columns(due_at.label("due_at"))
        .where(Milestone.actual_at.is_(None), Milestone.shipment_id.in_(open_shipments))
        .ext(distinct_on(Milestone.shipment_id))
        .order_by(Milestone.shipment_id, Milestone.sequence)
        .subquery()
    )
    statement = (
        select(next_milestones.c.shipment_id)
        .where(next_milestones.c.due_at <= now)
        .order_by(next_milestones.c.due_at, next_milestones.c.shipment_id)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def advance_shipments(
    sessions: async_sessionmaker[AsyncSession],
    scope: TenantScope,
    shipment_ids: Sequence[uuid.UUID],
    *,
    cutoff: dt.datetime,
    run_id: str,
) -> int:
    """Report each shipment's next milestone if the simulated carrier has done it by ``cutoff``, else its
    estimate; returns the number of new events. One transaction for all of them.

    ``run_id`` (the message id) goes into the events' source ids, so running the same message twice adds
    nothing: the second run's actual has the first run's dedup key, and its estimate is already in place.
    """
    new_events = 0
    async with scoped_transaction(sessions, scope) as session:
        # in id order, as every transaction locks shipments: a detection evaluation of an overlapping set
        # would otherwise deadlock with this one
        for shipment_id in sorted(set(shipment_ids)):
            new_events += await _advance(session, scope, shipment_id, cutoff=cutoff, run_id=run_id)
    log.log(
        logging.INFO if new_events else logging.DEBUG,
        "demo feed advanced",
        tenant_id=str(scope.tenant_id),
        shipments=len(shipment_ids),
        new_events=new_events,
    )
    return new_events


def _expected_at(milestones: Sequence[Milestone], index: int) -> dt.datetime | None:
    milestone = milestones[index]
    previous = milestones[index - 1] if index > 0 else None
    if milestone.estimated_at is not None:
        if previous is not None and previous.actual_at is not None:
            return max(milestone.estimated_at, previous.actual_at + 15 * MINUTE)
        return milestone.estimated_at
    if milestone.planned_at is None:
        return None
    return simulated_time(
        milestone.planned_at,
        feed_deviation(milestone.id),
        previous.planned_at if previous else None,
        previous.actual_at if previous else None,
    )


async def _advance(
    session: AsyncSession, scope: TenantScope, shipment_id: uuid.UUID, *, cutoff: dt.datetime, run_id: str
) -> int:
    statement = scoped(select(Shipment), Shipment, scope).where(Shipment.id == shipment_id).with_for_update()
    shipment = (await session.execute(statement)).scalar_one_or_none()
    if shipment is None or shipment.status not in _OPEN_STATUSES:
        return 0
    milestones = list(
        (
            await session.execute(
                scoped(select(Milestone), Milestone, scope)
                .where(Milestone.shipment_id == shipment.id)
                .order_by(Milestone.sequence)
            )
        ).scalars()
    )
    index = next((i for i, m in enumerate(milestones) if m.actual_at is None), None)
    if index is None:
        return 0
    new_events = 0
    expected = _expected_at(milestones, index)
    if expected is not None and expected <= cutoff:
        pending = milestones[index]
        actual = _event(
            shipment.mode,
            pending.code,
            pending.location_locode,
            EventClassifier.ACTUAL,
            expected,
            source_event_id=f"{run_id}:{shipment.id}:ACT",
        )
        if not await record_event(session, scope, shipment.id, actual):
            return 0  # this message has been here before
        new_events += 1
        index += 1
        if index == len(milestones):
            return new_events
        expected = _expected_at(milestones, index)
    pending = milestones[index]
    # the carrier's estimate for what comes next, when it differs from what the timeline says
    if expected is not None and expected > cutoff and pending.estimated_at != expected:
        estimate = _event(
            shipment.mode,
            pending.code,
            pending.location_locode,
            EventClassifier.ESTIMATED,
            expected,
            source_event_id=f"{run_id}:{shipment.id}:EST",
        )
        new_events += int(await record_event(session, scope, shipment.id, estimate))
    return new_events


async def feed_tick(
    sessions: async_sessionmaker[AsyncSession],
    tenant_ids: Sequence[uuid.UUID],
    *,
    now: dt.datetime,
    per_tenant: int = FEED_SHIPMENTS_PER_TENANT,
) -> int:
    """Enqueue ``demo.advance_feed`` for each tenant's most overdue shipments; returns the messages sent."""
    from workers.actors import advance_feed  # workers import this module; import them at use

    sent = 0
    for tenant_id in tenant_ids:
        scope = TenantScope(tenant_id)
        async with scoped_transaction(sessions, scope) as session:
            due = await due_shipments(session, scope, now, per_tenant)
        if due:
            # sending may block on the broker's network round trip (RabbitMQ confirms)
            await asyncio.to_thread(advance_feed.send, str(tenant_id), [str(i) for i in due])
            sent += 1
    return sent


async def run_feed(state: AppState, stopping: asyncio.Event) -> None:
    """Background task for ``milepost.runtime.serve``: a feed tick every ``demo_feed_interval_seconds``."""
    interval = state.settings.demo_feed_interval_seconds
    tenant_ids = await demo_tenant_ids(state.sessions)
    log.info("demo feed started", tenants=len(tenant_ids), interval_seconds=interval)
    while not stopping.is_set():
        try:
            await feed_tick(state.sessions, tenant_ids, now=dt.datetime.now(dt.UTC))
        except Exception:
            # a broker or database hiccup costs one tick, not the feed
            log.exception("demo feed tick failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=interval)
    log.info("demo feed stopped")
