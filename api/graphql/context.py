"""Per-request GraphQL context: who is asking, and dataloaders bound to that principal's scope."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from api.state import AppState
from domain.carriers.models import Carrier
from domain.db import TenantScope, scoped_transaction
from domain.documents.models import ShipmentDocument
from domain.exceptions import repository as detection
from domain.exceptions.models import ExceptionActivity, ExceptionGroup, Rule, ShipmentException
from domain.notify import repository as notify
from domain.notify.models import WebhookAttempt
from domain.shipments import repository
from domain.shipments.models import Leg, Milestone, Shipment, ShipmentReference
from domain.tenancy import repository as tenancy
from domain.tenancy.models import Account, Team, User
from domain.tenancy.principal import Principal
from domain.tracking import repository as tracking
from domain.tracking.models import TrackingEvent
from domain.workflow import repository as workflow
from domain.workflow.models import ExceptionResolution
from domain.workflow.rules import PlaybookView
from domain.workflow.service import playbooks_in_force

if TYPE_CHECKING:
    from api.live import LiveConnection

K = TypeVar("K")
V = TypeVar("V")


class Loaders:
    """Dataloaders for one request. Each batch runs in its own scoped transaction from the session factory
    (sibling fields resolve concurrently, so a shared session would be unsafe). A ``Loaders`` belongs to
    one principal, so its caches can never serve another tenant's rows."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], scope: TenantScope) -> None:
        self._sessions = sessions
        self.scope = scope
        self.shipment: DataLoader[uuid.UUID, Shipment | None] = self._loader(repository.shipments_by_id, None)
        self.account: DataLoader[uuid.UUID, Account | None] = self._loader(repository.accounts_by_id, None)
        self.milestones: DataLoader[uuid.UUID, list[Milestone]] = self._loader(
            repository.milestones_by_shipment, []
        )
        self.references: DataLoader[uuid.UUID, list[ShipmentReference]] = self._loader(
            repository.references_by_shipment, []
        )
        self.legs: DataLoader[uuid.UUID, list[Leg]] = self._loader(repository.legs_by_shipment, [])
        self.documents: DataLoader[uuid.UUID, list[ShipmentDocument]] = self._loader(
            repository.documents_by_shipment, []
        )
        self.events: DataLoader[tuple[uuid.UUID, int], list[TrackingEvent]] = self._loader(
            tracking.recent_events_by_shipment, []
        )
        self.carrier: DataLoader[str, Carrier | None] = DataLoader(self._load_carriers)
        self.exception: DataLoader[uuid.UUID, ShipmentException | None] = self._loader(
            detection.exceptions_by_id, None
        )
        self.open_exceptions: DataLoader[uuid.UUID, list[ShipmentException]] = self._loader(
            detection.open_exceptions_by_shipment, []
        )
        self.activities: DataLoader[uuid.UUID, list[ExceptionActivity]] = self._loader(
            detection.activities_by_exception, []
        )
        self.rule: DataLoader[uuid.UUID, Rule | None] = self._loader(detection.rules_by_id, None)
        self.rule_versions: DataLoader[tuple[str, str], list[Rule]] = self._loader(
            detection.rule_versions, []
        )
        self.group: DataLoader[uuid.UUID, ExceptionGroup | None] = self._loader(detection.groups_by_id, None)
        self.group_size: DataLoader[uuid.UUID, int] = self._loader(detection.group_sizes, 0)
        self.user: DataLoader[uuid.UUID, User | None] = self._loader(tenancy.users_by_id, None)
        self.team: DataLoader[uuid.UUID, Team | None] = self._loader(tenancy.teams_by_id, None)
        self.team_members: DataLoader[uuid.UUID, list[uuid.UUID]] = self._loader(tenancy.team_members, [])
        self.resolution: DataLoader[uuid.UUID, ExceptionResolution | None] = self._loader(
            workflow.resolutions_of, None
        )
        self.playbooks: DataLoader[None, list[PlaybookView]] = DataLoader(self._load_playbooks)
        self.webhook_attempts: DataLoader[uuid.UUID, list[WebhookAttempt]] = self._loader(
            notify.attempts_by_delivery, []
        )

    def _loader(
        self,
        fetch: Callable[[AsyncSession, TenantScope, Sequence[K]], Awaitable[Mapping[K, V]]],
        default: V,
    ) -> DataLoader[K, V]:
        async def load(keys: list[K]) -> list[V]:
            async with scoped_transaction(self._sessions, self.scope) as session:
                found = await fetch(session, self.scope, keys)
            return [found.get(key, default) for key in keys]

        return DataLoader(load)

    async def _load_carriers(self, codes: list[str]) -> list[Carrier | None]:
        async with scoped_transaction(self._sessions, self.scope) as session:
            found = await repository.carriers_by_code(session, codes)
        return [found.get(code) for code in codes]

    async def _load_playbooks(self, keys: list[None]) -> list[list[PlaybookView]]:
        async with scoped_transaction(self._sessions, self.scope) as session:
            found = await playbooks_in_force(session, self.scope)
        return [found for _ in keys]

    async def run(self, work: Callable[[AsyncSession], Awaitable[V]]) -> V:
        """Run ``work`` in one transaction bound to this request's scope."""
        async with scoped_transaction(self._sessions, self.scope) as session:
            return await work(session)


@dataclass
class Context:
    """One operation's context. A subscription swaps ``loaders`` and ``now`` for each event it delivers (its
    events are resolved one after another), so an event never reads another's cached rows."""

    principal: Principal
    state: AppState
    loaders: Loaders
    request_id: str
    now: dt.datetime
    live: LiveConnection | None = None  # the WebSocket connection an operation arrived on
    # the response is written with orjson, so compiled reads may hand over PostgreSQL's JSON text as it is
    # (api/graphql/compiled.py); elsewhere (WebSocket, in-process) they hand over parsed values
    raw_json: bool = False
