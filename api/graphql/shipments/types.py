from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, cast

import strawberry
from strawberry.scalars import JSON

from api.graphql.context import Context
from api.graphql.relay import Node, PageInfo, check_page_size, to_global_id
from domain.shipments import models
from domain.shipments.repository import ShipmentOrder as ShipmentOrderValue
from domain.shipments.rules import MilestoneStatus as MilestoneStatusValue
from domain.shipments.rules import milestone_status
from domain.tenancy import models as tenancy

if TYPE_CHECKING:
    from api.graphql.exceptions.types import ShipmentDocument, ShipmentException
    from api.graphql.tracking.types import TrackingEvent

Mode = strawberry.enum(models.Mode, name="Mode", description="Transport mode.")
ShipmentStatus = strawberry.enum(
    models.ShipmentStatus, name="ShipmentStatus", description="Where a shipment is in its life."
)
Priority = strawberry.enum(models.Priority, name="Priority", description="Handling priority.")
ReferenceKind = strawberry.enum(
    models.ReferenceKind, name="ReferenceKind", description="What kind of identifier a reference is."
)
MilestoneCode = strawberry.enum(
    models.MilestoneCode, name="MilestoneCode", description="Canonical milestone vocabulary."
)
MilestoneStatus = strawberry.enum(
    MilestoneStatusValue, name="MilestoneStatus", description="A milestone judged against its plan."
)
SlaTier = strawberry.enum(tenancy.SlaTier, name="SlaTier", description="A shipper's service level.")


@strawberry.type(description="A shipper: the tenant's customer.")
class Account(Node):
    row: strawberry.Private[tenancy.Account]

    @strawberry.field(description="The tenant's code for the account.")
    def code(self) -> str:
        return self.row.code

    @strawberry.field(description="Display name.")
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="Service level, which drives severity and due times.")
    def sla_tier(self) -> SlaTier:  # type: ignore[valid-type]
        return tenancy.SlaTier(self.row.sla_tier)


def account_node(row: tenancy.Account) -> Account:
    return Account(id=to_global_id("Account", row.id), row=row)


@strawberry.type(description="A carrier from the shared reference list.")
class Carrier:
    code: str = strawberry.field(description="Milepost's carrier code (SCAC, IATA code or our own).")
    name: str = strawberry.field(description="Carrier name.")
    scac: str | None = strawberry.field(description="Standard Carrier Alpha Code, when it has one.")
    iata_code: str | None = strawberry.field(description="IATA airline code, when it has one.")


@strawberry.type(description="An identifier some party uses for the shipment.")
class ShipmentReference:
    kind: ReferenceKind = strawberry.field(description="What kind of identifier this is.")  # type: ignore[valid-type]
    value: str = strawberry.field(description="The identifier as given.")


@strawberry.type(description="A place: UN/LOCODE and, where known, an address.")
class Place:
    locode: str | None = strawberry.field(description="UN/LOCODE, e.g. NLRTM.")
    address: JSON | None = strawberry.field(description="Postal address fields.")


@strawberry.type(description="An amount of money.")
class Money:
    amount: Decimal = strawberry.field(description="Amount in the currency's units.")
    currency: str = strawberry.field(description="ISO 4217 currency code.")


@strawberry.type(description="One step of the timeline: planned, estimated and actual times with sources.")
class Milestone(Node):
    row: strawberry.Private[models.Milestone]

    @strawberry.field(description="Canonical milestone code.")
    def code(self) -> MilestoneCode:  # type: ignore[valid-type]
        return models.MilestoneCode(self.row.code)

    @strawberry.field(description="Position in the timeline, from 1.")
    def sequence(self) -> int:
        return self.row.sequence

    @strawberry.field(description="Where it happens (UN/LOCODE).")
    def location_locode(self) -> str | None:
        return self.row.location_locode

    @strawberry.field(description="When it was planned to happen.")
    def planned_at(self) -> dt.datetime | None:
        return self.row.planned_at

    @strawberry.field(description="Who set the plan (booking, a carrier message, ...).")
    def planned_source(self) -> str | None:
        return self.row.planned_source

    @strawberry.field(description="The latest estimate.")
    def estimated_at(self) -> dt.datetime | None:
        return self.row.estimated_at

    @strawberry.field(description="Source of the latest estimate.")
    def estimated_source(self) -> str | None:
        return self.row.estimated_source

    @strawberry.field(description="When it actually happened.")
    def actual_at(self) -> dt.datetime | None:
        return self.row.actual_at

    @strawberry.field(description="Source of the actual time.")
    def actual_source(self) -> str | None:
        return self.row.actual_source

    @strawberry.field(description="On time, late or pending against the plan, as of now.")
    def status(self, info: strawberry.Info[Context, None]) -> MilestoneStatus:  # type: ignore[valid-type]
        row = self.row
        return milestone_status(row.planned_at, row.estimated_at, row.actual_at, info.context.now)


@strawberry.type(description="One stage of the journey, with one mode and one carrier.")
class Leg:
    row: strawberry.Private[models.Leg]

    @strawberry.field(description="Position in the journey, from 1.")
    def sequence(self) -> int:
        return self.row.sequence

    @strawberry.field(description="Transport mode of this leg.")
    def mode(self) -> Mode:  # type: ignore[valid-type]
        return models.Mode(self.row.mode)

    @strawberry.field(description="Where the leg starts (UN/LOCODE).")
    def origin_locode(self) -> str | None:
        return self.row.origin_locode

    @strawberry.field(description="Where the leg ends (UN/LOCODE).")
    def destination_locode(self) -> str | None:
        return self.row.destination_locode

    @strawberry.field(description="The carrier of this leg.")
    async def carrier(self, info: strawberry.Info[Context, None]) -> Carrier | None:
        return await _carrier(info, self.row.carrier_code)

    @strawberry.field(description="Vessel name (ocean).")
    def vessel_name(self) -> str | None:
        return self.row.vessel_name

    @strawberry.field(description="Voyage number (ocean).")
    def voyage_number(self) -> str | None:
        return self.row.voyage_number

    @strawberry.field(description="Flight number (air).")
    def flight_number(self) -> str | None:
        return self.row.flight_number


async def _carrier(info: strawberry.Info[Context, None], code: str | None) -> Carrier | None:
    if code is None:
        return None
    row = await info.context.loaders.carrier.load(code)
    if row is None:
        return None
    return Carrier(code=row.code, name=row.name, scac=row.scac, iata_code=row.iata_code)


@strawberry.type(description="A shipment with its references, parties, legs, milestone timeline and events.")
class Shipment(Node):
    row: strawberry.Private[models.Shipment]

    @strawberry.field(description="Transport mode.")
    def mode(self) -> Mode:  # type: ignore[valid-type]
        return models.Mode(self.row.mode)

    @strawberry.field(description="Life-cycle status.")
    def status(self) -> ShipmentStatus:  # type: ignore[valid-type]
        return models.ShipmentStatus(self.row.status)

    @strawberry.field(description="Service level within the mode (FCL, LCL, FTL, LTL, express, ...).")
    def service_level(self) -> str | None:
        return self.row.service_level

    @strawberry.field(description="Handling priority.")
    def priority(self) -> Priority:  # type: ignore[valid-type]
        return models.Priority(self.row.priority)

    @strawberry.field(description="Where the shipment starts.")
    def origin(self) -> Place:
        return Place(locode=self.row.origin_locode, address=cast(JSON, self.row.origin_address))

    @strawberry.field(description="Where the shipment ends.")
    def destination(self) -> Place:
        return Place(locode=self.row.destination_locode, address=cast(JSON, self.row.destination_address))

    @strawberry.field(description="Delivery time promised to the shipper.")
    def promised_delivery_at(self) -> dt.datetime | None:
        return self.row.promised_delivery_at

    @strawberry.field(
        description="Declared value of the goods. Finance-only: finance and admin staff and partner clients "
        "with `billing:read`; for anyone else the field does not exist."
    )
    def declared_value(self) -> Money | None:
        if self.row.declared_value is None or self.row.declared_value_currency is None:
            return None
        return Money(amount=self.row.declared_value, currency=self.row.declared_value_currency)

    @strawberry.field(description="When Milepost first recorded the shipment.")
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field(description="When the shipment last changed.")
    def updated_at(self) -> dt.datetime:
        return self.row.updated_at

    @strawberry.field(description="The shipper the shipment belongs to.")
    async def account(self, info: strawberry.Info[Context, None]) -> Account | None:
        row = await info.context.loaders.account.load(self.row.account_id)
        return account_node(row) if row is not None else None

    @strawberry.field(description="The main carrier.")
    async def carrier(self, info: strawberry.Info[Context, None]) -> Carrier | None:
        return await _carrier(info, self.row.carrier_code)

    @strawberry.field(description="Booking, B/L, container, tracking, PRO and customer references.")
    async def references(self, info: strawberry.Info[Context, None]) -> list[ShipmentReference]:
        rows = await info.context.loaders.references.load(self.row.id)
        return [ShipmentReference(kind=models.ReferenceKind(r.kind), value=r.value) for r in rows]

    @strawberry.field(description="The milestone timeline in order, each judged against its plan.")
    async def timeline(self, info: strawberry.Info[Context, None]) -> list[Milestone]:
        rows = await info.context.loaders.milestones.load(self.row.id)
        return [Milestone(id=to_global_id("Milestone", r.id), row=r) for r in rows]

    @strawberry.field(
        description="Its legs in order: the carriers, vessels, voyages and flights that move it."
    )
    async def legs(self, info: strawberry.Info[Context, None]) -> list[Leg]:
        return [Leg(row=row) for row in await info.context.loaders.legs.load(self.row.id)]

    @strawberry.field(description="The documents received for it, in the order they arrived.")
    async def documents(
        self, info: strawberry.Info[Context, None]
    ) -> list[Annotated[ShipmentDocument, strawberry.lazy("api.graphql.exceptions.types")]]:
        from api.graphql.exceptions.types import document_node  # that module imports this one

        return [document_node(row) for row in await info.context.loaders.documents.load(self.row.id)]

    @strawberry.field(
        description="Its latest `first` tracking events, latest first, each with its source and raw code "
        "(retracted ones included and marked)."
    )
    async def events(
        self, info: strawberry.Info[Context, None], first: int = 20
    ) -> list[Annotated[TrackingEvent, strawberry.lazy("api.graphql.tracking.types")]]:
        from api.graphql.tracking.types import tracking_event_node  # that module imports this one

        limit = check_page_size(first, info.context.state.settings.graphql_max_page_size)
        rows = await info.context.loaders.events.load((self.row.id, limit))
        return [tracking_event_node(row) for row in rows]

    @strawberry.field(description="Its open exceptions (live ones), highest priority first.")
    async def exceptions(
        self, info: strawberry.Info[Context, None]
    ) -> list[Annotated[ShipmentException, strawberry.lazy("api.graphql.exceptions.types")]]:
        from api.graphql.exceptions.types import exception_node  # that module imports this one

        rows = await info.context.loaders.open_exceptions.load(self.row.id)
        return [exception_node(row) for row in rows]


def shipment_node(row: models.Shipment) -> Shipment:
    return Shipment(id=to_global_id("Shipment", row.id), row=row)


@strawberry.type(description="A shipment in a connection, with its cursor.")
class ShipmentEdge:
    cursor: str = strawberry.field(description="Opaque position; pass as `after` to continue.")
    node: Shipment = strawberry.field(description="The shipment.")


ShipmentOrder = strawberry.enum(
    ShipmentOrderValue,
    name="ShipmentOrder",
    description="NEWEST: newest first. PROMISED_DELIVERY: the soonest promised delivery first, shipments "
    "without a promise last.",
)


@strawberry.type(description="A page of shipments, in the order asked for.")
class ShipmentConnection:
    edges: list[ShipmentEdge] = strawberry.field(description="The shipments of this page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")


@strawberry.input(description="Narrow a shipment list; all given conditions must hold.")
class ShipmentFilter:
    status: list[ShipmentStatus] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these statuses."
    )
    mode: list[Mode] | None = strawberry.field(default=None, description="Any of these modes.")  # type: ignore[valid-type]
    account_id: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Any of these accounts (global ids)."
    )
    carrier_code: list[str] | None = strawberry.field(default=None, description="Any of these carriers.")
    reference: str | None = strawberry.field(
        default=None, description="Exactly this reference value (booking, B/L, container, tracking, ...)."
    )
