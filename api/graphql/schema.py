"""The GraphQL schema root. Per-concept types live in ``api/graphql/<concept>/``."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError

from api.graphql import clients, jobs
from api.graphql.access import NODE_ACCESS, require
from api.graphql.compiled import CompilingExecutionContext
from api.graphql.context import Context
from api.graphql.errors import MaskInternalErrors
from api.graphql.exceptions import resolvers as detection
from api.graphql.exceptions.types import DisruptionNotice, ExceptionGroup, Rule, ShipmentException
from api.graphql.limits import HardenedSchema, Hardening
from api.graphql.notify import resolvers as notify
from api.graphql.relay import (
    DEFAULT_PAGE_SIZE,
    Node,
    UserInputError,
    check_page_size,
    decode_cursor,
    decode_position,
    expect_global_id,
    from_global_id,
    paginate,
)
from api.graphql.shipments.compiled import ShipmentLookup, ShipmentPage
from api.graphql.shipments.types import (
    Account,
    Milestone,
    Shipment,
    ShipmentConnection,
    ShipmentFilter,
    ShipmentOrder,
    account_node,
    shipment_node,
)
from api.graphql.subscriptions import LiveOperations, Subscription
from api.graphql.tracking.types import (
    CodeMapping,
    CodeMappingInput,
    IngestMessage,
    IngestMessageConnection,
    IngestMessageEdge,
    InvalidInputError,
    NotFoundError,
    ReplayIngestMessagePayload,
    ReplayIngestMessageSuccess,
    UpsertCodeMappingPayload,
    UpsertCodeMappingSuccess,
    ingest_message_node,
)
from api.graphql.tracking.types import IngestStatus as IngestStatusEnum
from api.graphql.workflow import resolvers as workflow
from domain.shipments import repository
from domain.shipments.repository import PageKey
from domain.shipments.repository import ShipmentOrder as ShipmentOrderValue
from domain.tenancy.repository import current_tenant
from domain.tracking import ingest
from domain.tracking.mapping import MappingError


@strawberry.type(description="A tenant: the Milepost customer whose data this API serves.")
class Tenant:
    slug: str = strawberry.field(description="Short unique name, used at login.")
    name: str = strawberry.field(description="Display name.")


@strawberry.type(description="Who is calling.")
class Viewer:
    kind: str = strawberry.field(description="`user` or `api_client`.")
    roles: list[str] = strawberry.field(description="Roles of a user (staff roles or `shipper`).")
    scopes: list[str] = strawberry.field(description="OAuth2 scopes of a partner client's token.")
    tenant: Tenant = strawberry.field(description="The tenant the caller belongs to.")
    account: Account | None = strawberry.field(description="For shippers: the account they belong to.")


async def _shipment(info: strawberry.Info[Context, None], shipment_id: object) -> Shipment | None:
    import uuid

    assert isinstance(shipment_id, uuid.UUID)
    row = await info.context.loaders.shipment.load(shipment_id)
    return shipment_node(row) if row is not None else None


@strawberry.type(
    description="Reads: the caller, shipments and their timelines, ingest messages, exceptions and rules."
)
class Query:
    @strawberry.field(description="The authenticated caller.")
    async def viewer(self, info: strawberry.Info[Context, None]) -> Viewer:
        context = info.context
        principal = context.principal
        tenant = await context.loaders.run(lambda s: current_tenant(s, principal.scope))
        if tenant is None:  # a valid token for a tenant that no longer exists
            raise GraphQLError("the caller's tenant does not exist", extensions={"code": "UNAUTHENTICATED"})
        account = None
        if principal.account_id is not None:
            row = await context.loaders.account.load(principal.account_id)
            account = account_node(row) if row is not None else None
        return Viewer(
            kind=principal.subject_kind,
            roles=sorted(principal.roles),
            scopes=sorted(principal.scopes),
            tenant=Tenant(slug=tenant.slug, name=tenant.name),
            account=account,
        )

    @strawberry.field(description="Any object by its global id; null when it does not exist for you.")
    async def node(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> Node | None:
        type_name, value = from_global_id(id)
        loaders = info.context.loaders
        permission = NODE_ACCESS.get(type_name)
        if permission is None:
            return None  # milestones are reached through their shipment; unknown types find nothing
        require(info.context.principal, permission)  # which permission depends on the id
        if type_name == "Shipment":
            return await _shipment(info, value)
        if type_name == "Account":
            account = await loaders.account.load(value)
            return account_node(account) if account is not None else None
        if type_name == "IngestMessage":
            return await _ingest_message(info, value)
        if type_name == "DeadLetter":
            return await jobs.dead_letter_by_id(info, value)
        if type_name == "ApiClient":
            return await clients.api_client_by_id(info, value)
        if type_name in detection.NODE_TYPES:
            return await detection.node(info, type_name, value)
        if type_name in workflow.NODE_TYPES:
            return await workflow.node(info, type_name, value)
        return None

    @strawberry.field(description="One shipment by global id; null when it does not exist for you.")
    async def shipment(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> Shipment | None:
        value = expect_global_id(id, "Shipment")
        return await _shipment(info, value) if value is not None else None

    @strawberry.field(
        description="The newest shipment carrying this reference (booking, B/L, container, tracking, PRO, "
        "customer reference); null when none does for you.",
        graphql_type=Shipment | None,
    )
    async def shipment_by_reference(
        self, info: strawberry.Info[Context, None], reference: str
    ) -> ShipmentLookup:
        context = info.context
        if not reference.strip() or len(reference) > 128:
            raise UserInputError("reference: must be 1 to 128 characters", argument="reference")
        return ShipmentLookup(context, repository.ShipmentFilter(reference=reference))

    @strawberry.field(
        description="Shipments as a Relay connection, newest first unless `orderBy` says.",
        graphql_type=ShipmentConnection,
    )
    async def shipments(
        self,
        info: strawberry.Info[Context, None],
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: ShipmentFilter | None = None,
        order_by: ShipmentOrder = ShipmentOrderValue.NEWEST,  # type: ignore[valid-type]
    ) -> ShipmentPage:
        context = info.context
        limit = check_page_size(first, context.state.settings.graphql_max_page_size)
        order = ShipmentOrderValue(order_by)
        position = decode_position(after, order.value) if after else None
        return ShipmentPage(context, _filter(filter), limit, position, order)

    @strawberry.field(description="Stored ingest messages, newest first, with per-event results.")
    async def ingest_messages(
        self,
        info: strawberry.Info[Context, None],
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        status: list[IngestStatusEnum] | None = None,  # type: ignore[valid-type]
    ) -> IngestMessageConnection:
        context = info.context
        limit = check_page_size(first, context.state.settings.graphql_max_page_size)
        position = decode_cursor(after) if after else None
        scope = context.principal.scope
        rows = await context.loaders.run(
            lambda session: ingest.list_messages(
                session,
                scope,
                statuses=[str(s) for s in status or []],
                limit=limit + 1,
                after=(position.created_at, position.id) if position else None,
            )
        )
        cursored, page_info = paginate(rows, limit, lambda row: PageKey(row.received_at, row.id))
        edges = [IngestMessageEdge(cursor=cursor, node=ingest_message_node(row)) for cursor, row in cursored]
        return IngestMessageConnection(edges=edges, page_info=page_info)

    @strawberry.field(description="One ingest message by global id; null when it does not exist for you.")
    async def ingest_message(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> IngestMessage | None:
        value = expect_global_id(id, "IngestMessage")
        return await _ingest_message(info, value) if value is not None else None

    dead_letters: jobs.DeadLetterConnection = strawberry.field(
        resolver=jobs.dead_letters, description="Background jobs that failed their last attempt (admins)."
    )
    exceptions = strawberry.field(
        resolver=detection.exceptions,
        description="Exceptions, newest first, as a Relay connection (live ones unless `filter.shadow`).",
    )
    exception = strawberry.field(
        resolver=detection.exception,
        description="One exception by global id; null when it does not exist for you.",
    )
    rules = strawberry.field(
        resolver=detection.rules,
        description="The detection rules in force: the highest version of each (type, name), disabled ones "
        "included. A tenant without rules gets the defaults on first use.",
    )
    exception_types = strawberry.field(
        resolver=detection.exception_types,
        description="The exception types Milepost detects, with their parameters and defaults.",
    )
    disruption_notices = strawberry.field(
        resolver=detection.disruption_notices,
        description="The tenant's and the platform-wide disruption notices, soonest first; ended ones only "
        "with `includeEnded`.",
    )
    teams = strawberry.field(resolver=workflow.teams, description="The tenant's teams, by name.")
    playbooks = strawberry.field(
        resolver=workflow.playbooks,
        description="Playbooks: the tenant's, then Milepost's built-in one per exception type.",
    )
    escalation_policies = strawberry.field(
        resolver=workflow.escalation_policies,
        description="Escalation policies: the tenant's by name, then the built-in default.",
    )
    assignment_rules = strawberry.field(
        resolver=workflow.assignment_rules, description="Auto-assignment rules in the order they are tried."
    )
    response_targets = strawberry.field(
        resolver=workflow.response_targets,
        description="Respond-by and resolve-by targets: the tenant's, then the defaults for keys it has "
        "not set.",
    )
    notifications = strawberry.field(
        resolver=notify.notifications, description="The viewer's in-app notifications, newest first."
    )
    notification_preferences = strawberry.field(
        resolver=notify.notification_preferences,
        description="What the viewer hears and how (and, for shipper users, their account's default); "
        "admins may ask for another user's (`userId`; null when there is no such user).",
    )
    webhook_endpoints = strawberry.field(
        resolver=notify.webhook_endpoints,
        description="Webhook endpoints: all of the tenant's for admins, the account's own for shipper users.",
    )
    webhook_deliveries = strawberry.field(
        resolver=notify.webhook_deliveries,
        description="An endpoint's deliveries with their attempts, newest first.",
    )
    email_templates = strawberry.field(
        resolver=notify.email_templates,
        description="Every e-mail template: the tenant's override or the built-in one, with its fields "
        "(admin).",
    )
    mail_branding = strawberry.field(
        resolver=notify.mail_branding,
        description="The tenant's e-mail name, sender, colour and footer (admin).",
    )
    api_clients: list[clients.ApiClient] = strawberry.field(
        resolver=clients.api_clients,
        description="The tenant's partner API clients, oldest first; revoked ones only with "
        "`includeRevoked` (admin).",
    )
    api_scopes: list[clients.ApiScope] = strawberry.field(
        resolver=clients.api_scopes, description="Every scope a partner client may be granted (admin)."
    )
    resolution_metrics = strawberry.field(
        resolver=workflow.resolution_metrics,
        description="Precision per rule version and median times to resolve, over resolutions in "
        "[since, until) (at most 366 days).",
    )


async def _ingest_message(info: strawberry.Info[Context, None], message_id: object) -> IngestMessage | None:
    import uuid

    assert isinstance(message_id, uuid.UUID)
    scope = info.context.principal.scope
    row = await info.context.loaders.run(lambda session: ingest.get_message(session, scope, message_id))
    return ingest_message_node(row) if row is not None else None


@strawberry.type(description="Writes; each returns a union of its success type and typed errors.")
class Mutation:
    replay_dead_letter: jobs.ReplayDeadLetterPayload = strawberry.mutation(
        resolver=jobs.replay_dead_letter, description="Send a dead letter's job again, once (admins)."
    )

    @strawberry.mutation(
        description="Parse and process a stored message again with today's adapters and mappings."
    )
    async def replay_ingest_message(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> ReplayIngestMessagePayload:
        context = info.context
        value = expect_global_id(id, "IngestMessage")
        if value is None:
            return NotFoundError(message=f"no ingest message {id}")
        scope = context.principal.scope

        async def work(session: Any) -> Any:
            try:
                return await ingest.replay(session, scope, value, now=context.state.clock())
            except ingest.IngestError:
                return None

        row = await context.loaders.run(work)
        if row is None:
            return NotFoundError(message=f"no ingest message {id}")
        return ReplayIngestMessageSuccess(ingest_message=ingest_message_node(row))

    @strawberry.mutation(description="Set this tenant's meaning for one source code (all carriers, or one).")
    async def upsert_code_mapping(
        self, info: strawberry.Info[Context, None], input: CodeMappingInput
    ) -> UpsertCodeMappingPayload:
        context = info.context
        scope = context.principal.scope

        async def work(session: Any) -> Any:
            return await ingest.upsert_code_mapping(
                session,
                scope,
                system=input.system,
                code=input.code,
                carrier_code=input.carrier_code,
                milestone=input.milestone,
                signal=input.signal,
                raw_only=input.raw_only,
                description=input.description,
            )

        try:
            row = await context.loaders.run(work)
        except MappingError as error:
            return InvalidInputError(field="input", message=str(error))
        return UpsertCodeMappingSuccess(
            mapping=CodeMapping(
                system=row.system,
                code=row.code,
                carrier_code=row.carrier_code,
                milestone=row.milestone,
                signal=row.signal,
                raw_only=row.raw_only,
                description=row.description,
            )
        )

    upsert_rule = strawberry.mutation(
        resolver=detection.upsert_rule,
        description="Write a new version of a detection rule (admin); shipments are re-checked at the next "
        "sweep.",
    )
    backtest_rule = strawberry.mutation(
        resolver=detection.backtest_rule,
        description="Replay a candidate rule over a past window and report what it would have raised; "
        "writes nothing.",
    )
    snooze_exception = strawberry.mutation(
        resolver=detection.snooze_exception,
        description="Quiet an open exception until a time; it opens again then if the condition holds.",
    )
    snooze_exception_group = strawberry.mutation(
        resolver=detection.snooze_exception_group,
        description="Snooze a cause group: its open exceptions and those that join it until then.",
    )
    create_disruption_notice = strawberry.mutation(
        resolver=detection.create_disruption_notice,
        description="Record a disruption at a place; the shipments passing there are re-checked.",
    )
    record_shipment_document = strawberry.mutation(
        resolver=detection.record_shipment_document,
        description="Record a document received for a shipment (clears a missing-documents exception).",
    )
    acknowledge_exception = strawberry.mutation(
        resolver=workflow.acknowledge_exception,
        description="Someone has seen it: open or reopened → acknowledged; the respond-by clock stops.",
    )
    start_work_on_exception = strawberry.mutation(
        resolver=workflow.start_work_on_exception,
        description="Someone works on it: → in_progress (counts as acknowledged).",
    )
    assign_exception = strawberry.mutation(
        resolver=workflow.assign_exception,
        description="Give it to a staff user and/or a team of this tenant; both null unassigns.",
    )
    comment_on_exception = strawberry.mutation(
        resolver=workflow.comment_on_exception,
        description="Add a comment: internal unless `customerVisible`; a shipper's is always visible to it.",
    )
    record_exception_action = strawberry.mutation(
        resolver=workflow.record_exception_action,
        description="Record a playbook action taken; it joins the resolution's action codes.",
    )
    resolve_exception = strawberry.mutation(
        resolver=workflow.resolve_exception,
        description="Resolve with outcome, root cause, actions, cost and whether the customer was told.",
    )
    close_exception = strawberry.mutation(
        resolver=workflow.close_exception, description="Archive a resolved exception: → closed."
    )
    reopen_exception = strawberry.mutation(
        resolver=workflow.reopen_exception,
        description="Reopen a resolved exception: → reopened, triaged again (new due times, escalation).",
    )
    mark_notifications_read = strawberry.mutation(
        resolver=notify.mark_notifications_read,
        description="Mark the viewer's notifications read (ids null: all).",
    )
    update_notification_preferences = strawberry.mutation(
        resolver=notify.update_notification_preferences,
        description="Set what the viewer hears and how (shipper users: `forAccount` sets the account's "
        "default; admins: `userId` sets another user's).",
    )
    create_webhook_endpoint = strawberry.mutation(
        resolver=notify.create_webhook_endpoint,
        description="Add a webhook endpoint; the answer shows its signing secret once.",
    )
    update_webhook_endpoint = strawberry.mutation(
        resolver=notify.update_webhook_endpoint,
        description="Change an endpoint's URL, event types or description, or enable or disable it "
        "(enabling resets failures and sends what waited).",
    )
    rotate_webhook_secret = strawberry.mutation(
        resolver=notify.rotate_webhook_secret, description="A new signing secret, shown once."
    )
    delete_webhook_endpoint = strawberry.mutation(
        resolver=notify.delete_webhook_endpoint, description="Remove an endpoint and its delivery log."
    )
    replay_webhook_delivery = strawberry.mutation(
        resolver=notify.replay_webhook_delivery,
        description="Send a delivery's event again, as a new delivery.",
    )
    upsert_email_template = strawberry.mutation(
        resolver=notify.upsert_email_template,
        description="Override an e-mail template (admin); a field that does not exist is refused.",
    )
    reset_email_template = strawberry.mutation(
        resolver=notify.reset_email_template,
        description="Drop the tenant's override of an e-mail template: the built-in one applies again "
        "(admin).",
    )
    set_mail_branding = strawberry.mutation(
        resolver=notify.set_mail_branding,
        description="The tenant's e-mail name, sender, colour and footer (admin).",
    )
    follow_exception = strawberry.mutation(
        resolver=notify.follow_exception, description="Hear about an exception's changes like its assignee."
    )
    unfollow_exception = strawberry.mutation(
        resolver=notify.unfollow_exception, description="Stop following."
    )
    create_team = strawberry.mutation(resolver=workflow.create_team, description="Create a team (admin).")
    create_api_client: clients.CreateApiClientPayload = strawberry.mutation(
        resolver=clients.create_api_client,
        description="Create a partner API client (admin); the answer shows its secret once.",
    )
    rotate_api_client_secret: clients.RotateApiClientSecretPayload = strawberry.mutation(
        resolver=clients.rotate_api_client_secret,
        description="Issue a new secret, shown once (admin); the current one keeps working for `graceHours`.",
    )
    expire_api_client_previous_secret: clients.ExpireApiClientPreviousSecretPayload = strawberry.mutation(
        resolver=clients.expire_api_client_previous_secret,
        description="Stop accepting the secret before the last rotation now (admin).",
    )
    revoke_api_client: clients.RevokeApiClientPayload = strawberry.mutation(
        resolver=clients.revoke_api_client,
        description="Revoke a partner client (admin): it gets no new tokens, and the ones it holds are "
        "refused at once.",
    )
    upsert_assignment_rule = strawberry.mutation(
        resolver=workflow.upsert_assignment_rule,
        description="Create or replace (by name) an auto-assignment rule (admin).",
    )
    upsert_playbook = strawberry.mutation(
        resolver=workflow.upsert_playbook,
        description="Create or replace the tenant's playbook for (type, tier, value band) (admin).",
    )
    upsert_escalation_policy = strawberry.mutation(
        resolver=workflow.upsert_escalation_policy,
        description="Create or replace (by name) an escalation policy (admin).",
    )
    set_response_target = strawberry.mutation(
        resolver=workflow.set_response_target,
        description="Set respond-by and resolve-by minutes for a severity, optionally one SLA tier (admin).",
    )


def _filter(given: ShipmentFilter | None) -> repository.ShipmentFilter:
    if given is None:
        return repository.ShipmentFilter()
    account_ids = []
    for index, global_id in enumerate(given.account_id or []):
        value = expect_global_id(global_id, "Account", argument=f"filter.accountId[{index}]")
        if value is None:
            raise UserInputError(
                f"filter.accountId[{index}]: {global_id!r} is not an account id", argument="filter"
            )
        account_ids.append(value)
    return repository.ShipmentFilter(
        statuses=[str(s) for s in given.status or []],
        modes=[str(m) for m in given.mode or []],
        account_ids=account_ids,
        carrier_codes=list(given.carrier_code or []),
        reference=given.reference,
    )


schema = HardenedSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[
        jobs.DeadLetter,
        clients.ApiClient,
        Shipment,
        Account,
        Milestone,
        IngestMessage,
        ShipmentException,
        ExceptionGroup,
        Rule,
        DisruptionNotice,
    ],
    # LiveOperations first: the others must see each WebSocket operation's own context
    extensions=[LiveOperations, MaskInternalErrors, Hardening],
    execution_context_class=CompilingExecutionContext,
)
