"""Who may use which field: one map, :data:`FIELD_ACCESS`, checked before anything runs.

Every field of every object and interface type of the schema is in the map, keyed by (GraphQL type name,
GraphQL field name), with the :class:`Permission` its caller needs. :class:`AccessRule` is a validation
rule: for each field a document selects it looks the field up, and refuses a field that is not in the map
(a server bug, but never a way in) or that the caller may not use, with ``FORBIDDEN`` and the permission's
message, before any resolver runs. ``tests/api/test_graphql_access.py`` fails on any schema field missing
from the map, and on any entry the schema no longer has.

Root fields (``Query``, ``Mutation``, ``Subscription``) carry the roles and scopes. A nested type's fields
carry :data:`THROUGH_PARENT` when whoever reached the parent may read them (a connection's ``edges``, a
payload's ``exception``), or a permission of their own where the parent does not decide
(``Shipment.exceptions`` needs exception readers; ``Shipment.declaredValue`` is finance's).

A **hidden** permission (``Shipment.declaredValue``: finance) goes further: for a caller without it the
field does not exist. Such a caller's documents are validated against :func:`visible_schema`, the schema
without the fields hidden from it, so selecting one gets exactly graphql's error for a field that does not
exist; and introspection (``__type``, ``__schema``) does not list it (:func:`filter_introspection`).

What the map cannot say, because it depends on data or on argument values, stays in the resolvers and
uses the permissions defined here (never role or scope lists of their own):

- ``node(id)``: the type inside the id decides, :data:`NODE_ACCESS` (``Query.node`` itself is for anyone);
- ``notificationPreferences(userId)`` and ``updateNotificationPreferences(userId)``: another user's
  preferences are for :data:`ADMIN`;
- ``exceptions(filter)``: shippers may not ask for shadow exceptions or filter by assignment;
- ``shipmentUpdates``: exception changes are announced only to :data:`EXCEPTION_READ` callers;
- webhook endpoints: shipper users and account-bound clients manage their own account's only;
- a shipper sees only the customer part of an exception (``api/graphql/exceptions/types.py``: staff-only
  fields answer null, as ``domain.exceptions.rules.CUSTOMER_FIELDS`` decides);
- rows: the tenant, and a shipper's account, by PostgreSQL row-level security (``domain/db.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLResolveInfo,
    GraphQLSchema,
    ValidationRule,
    introspection_types,
)
from graphql.utilities.map_schema_config import ConfigMapperMap, SchemaElementKind, map_schema_config

from api.graphql.relay import Forbidden
from domain.tenancy.models import STAFF_ROLES, Role
from domain.tenancy.principal import Principal
from domain.tenancy.rules import Scope

INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


@dataclass(frozen=True, slots=True)
class Audience:
    """What access depends on, from a :class:`Principal`: small and hashable, so validation results are
    cached per audience rather than per caller."""

    subject_kind: str  # "user", "api_client", or "nobody" (no principal: in-process use)
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    is_shipper: bool = False

    @classmethod
    def of(cls, principal: Principal | None) -> Audience:
        if principal is None:
            return NOBODY
        return cls(principal.subject_kind, principal.roles, principal.scopes, principal.is_shipper)


NOBODY = Audience("nobody")


def _either(roles: tuple[str, ...]) -> str:
    return roles[0] if len(roles) == 1 else f"{', '.join(roles[:-1])} or {roles[-1]}"


@dataclass(frozen=True, slots=True)
class Permission:
    """Who may use a field. Staff users (not shippers) need one of ``roles``; shipper users need
    ``shippers`` (and see their account's rows only); partner clients need ``scope``. ``every_user`` and
    ``every_client`` let all users or all clients in, whatever their roles or scopes."""

    name: str  # who may, in words: for readers of the map and of reprs
    roles: tuple[str, ...] = ()
    shippers: bool = False
    scope: Scope | None = None
    every_user: bool = False
    every_client: bool = False
    hidden: bool = False  # callers without it are told the field does not exist
    user_refusal: str | None = None  # default: "this operation needs the <roles> role"
    client_refusal: str | None = None  # default: the scope's message, else the users'

    def allows(self, audience: Audience) -> bool:
        if audience.subject_kind == "api_client":
            return self.every_client or (self.scope is not None and self.scope in audience.scopes)
        if audience.subject_kind != "user":
            return False
        if self.every_user:
            return True
        if audience.is_shipper:
            return self.shippers
        return not audience.roles.isdisjoint(self.roles)

    def refusal(self, audience: Audience) -> str:
        """What a caller of this audience is told when :meth:`allows` says no."""
        if audience.subject_kind == "api_client":
            if self.client_refusal is not None:
                return self.client_refusal
            if self.scope is not None:
                return f"this operation needs the '{self.scope}' scope"
        elif audience.subject_kind != "user":
            return "this operation needs an authenticated caller"
        if self.user_refusal is not None:
            return self.user_refusal
        if not self.roles:
            return "this operation is for partner clients"
        return f"this operation needs the {_either(self.roles)} role"


# --- the permissions -----------------------------------------------------------------------------------

ADMIN_ROLE: tuple[str, ...] = (Role.ADMIN,)
DETECTION_STAFF: tuple[str, ...] = (Role.ADMIN, Role.OPERATIONS)
# the staff who work exceptions day to day; sales may read them, finance has its own views
EXCEPTION_WORKERS: tuple[str, ...] = (*DETECTION_STAFF, Role.CUSTOMER_SERVICE, Role.DOCUMENTATION)
EXCEPTION_READERS: tuple[str, ...] = (*EXCEPTION_WORKERS, Role.SALES)
_USERS_ONLY = "notifications belong to users; partner clients use webhooks"

ANYONE = Permission("any authenticated caller", every_user=True, every_client=True)
THROUGH_PARENT = Permission("whoever may reach the parent field", every_user=True, every_client=True)

SHIPMENT_READ = Permission(
    "read shipments: every user (shippers their account's), clients with shipments:read",
    every_user=True,
    scope=Scope.SHIPMENTS_READ,
)
INGEST = Permission(
    "ingest messages and code mappings: admin or operations, clients with ingest",
    roles=DETECTION_STAFF,
    scope=Scope.INGEST,
)
EXCEPTION_READ = Permission(
    "read exceptions: exception readers, shippers (their account's), clients with exceptions:read",
    roles=EXCEPTION_READERS,
    shippers=True,
    scope=Scope.EXCEPTIONS_READ,
)
EXCEPTION_WORK = Permission(
    "work exceptions: exception workers, clients with exceptions:write",
    roles=EXCEPTION_WORKERS,
    scope=Scope.EXCEPTIONS_WRITE,
)
EXCEPTION_COMMENT = Permission(
    "comment on exceptions: exception workers, shippers (their account's), clients with exceptions:write",
    roles=EXCEPTION_WORKERS,
    shippers=True,
    scope=Scope.EXCEPTIONS_WRITE,
)
WORKFLOW_READ = Permission(
    "teams, playbooks, policies, targets and metrics: exception workers", roles=EXCEPTION_WORKERS
)
DETECTION = Permission(
    "rules, groups, notices, backtests and snoozes: admin or operations", roles=DETECTION_STAFF
)
# rules, teams, playbooks, policies, targets, templates, branding, dead letters, API clients: they shape
# everyone's work; no scope lets a client manage clients (it could grant itself any scope)
ADMIN = Permission("tenant administration: admin", roles=ADMIN_ROLE)
DOCUMENTS = Permission(
    "record documents: documentation, admin or operations",
    roles=(Role.DOCUMENTATION, *DETECTION_STAFF),
)
USERS = Permission(
    "in-app notifications and preferences: every user",
    every_user=True,
    client_refusal=_USERS_ONLY,
)
FOLLOW = Permission(
    "follow exceptions: users who may read them",
    roles=EXCEPTION_READERS,
    shippers=True,
    client_refusal=_USERS_ONLY,
)
WEBHOOKS = Permission(
    "webhook endpoints: admin, shippers (their account's), clients with webhooks:manage",
    roles=ADMIN_ROLE,
    shippers=True,
    scope=Scope.WEBHOOKS_MANAGE,
    user_refusal="webhook endpoints are managed by tenant admins and by shipper users for their account",
)
FINANCE = Permission(
    "finance-only: finance or admin, clients with billing:read (hidden from everyone else)",
    roles=(Role.FINANCE, Role.ADMIN),
    scope=Scope.BILLING_READ,
    hidden=True,
)
INTROSPECT = Permission(
    "introspection: staff users and partner clients",
    roles=tuple(sorted(STAFF_ROLES)),
    every_client=True,
    user_refusal="Introspection is available to staff users and partner clients only.",
)


# --- the map -------------------------------------------------------------------------------------------

FIELD_ACCESS: dict[tuple[str, str], Permission] = {}


def grant(type_name: str, permission: Permission, fields: str) -> None:
    """Map each of ``fields`` (GraphQL names, whitespace-separated) of ``type_name`` to ``permission``."""
    for field in fields.split():
        key = (type_name, field)
        if key in FIELD_ACCESS:
            raise ValueError(f"{type_name}.{field} is granted twice")
        FIELD_ACCESS[key] = permission


# roots
grant("Query", ANYONE, "viewer node")
grant("Query", SHIPMENT_READ, "shipment shipmentByReference shipments")
grant("Query", INGEST, "ingestMessages ingestMessage")
grant("Query", EXCEPTION_READ, "exceptions exception exceptionTypes")
grant("Query", DETECTION, "rules disruptionNotices")
grant("Query", WORKFLOW_READ, "teams playbooks escalationPolicies assignmentRules responseTargets")
grant("Query", WORKFLOW_READ, "resolutionMetrics")
grant("Query", USERS, "notifications notificationPreferences")
grant("Query", WEBHOOKS, "webhookEndpoints webhookDeliveries")
grant("Query", ADMIN, "deadLetters apiClients apiScopes emailTemplates mailBranding")

grant("Mutation", INGEST, "replayIngestMessage upsertCodeMapping")
grant("Mutation", DETECTION, "backtestRule snoozeException snoozeExceptionGroup createDisruptionNotice")
grant("Mutation", DOCUMENTS, "recordShipmentDocument")
grant(
    "Mutation",
    EXCEPTION_WORK,
    """
    acknowledgeException startWorkOnException assignException recordExceptionAction resolveException
    closeException reopenException
    """,
)
grant("Mutation", EXCEPTION_COMMENT, "commentOnException")
grant("Mutation", USERS, "markNotificationsRead updateNotificationPreferences")
grant(
    "Mutation",
    WEBHOOKS,
    """
    createWebhookEndpoint updateWebhookEndpoint rotateWebhookSecret deleteWebhookEndpoint
    replayWebhookDelivery
    """,
)
grant("Mutation", FOLLOW, "followException unfollowException")
grant(
    "Mutation",
    ADMIN,
    """
    upsertRule replayDeadLetter createApiClient rotateApiClientSecret expireApiClientPreviousSecret
    revokeApiClient upsertEmailTemplate resetEmailTemplate setMailBranding createTeam upsertAssignmentRule
    upsertPlaybook upsertEscalationPolicy setResponseTarget
    """,
)

grant("Subscription", EXCEPTION_READ, "exceptionEvents")
grant("Subscription", SHIPMENT_READ, "shipmentUpdates")

# shared
grant("Node", THROUGH_PARENT, "id")
grant("PageInfo", THROUGH_PARENT, "hasNextPage hasPreviousPage startCursor endCursor")
grant("NotFoundError", THROUGH_PARENT, "message")
grant("InvalidInputError", THROUGH_PARENT, "field message")
grant("Viewer", THROUGH_PARENT, "kind roles scopes tenant account")
grant("Tenant", THROUGH_PARENT, "slug name")

# shipments
grant(
    "Shipment",
    THROUGH_PARENT,
    """
    id mode status serviceLevel priority origin destination promisedDeliveryAt createdAt updatedAt
    account carrier references timeline legs documents events
    """,
)
grant("Shipment", EXCEPTION_READ, "exceptions")
grant("Shipment", FINANCE, "declaredValue")
grant("ShipmentConnection", THROUGH_PARENT, "edges pageInfo")
grant("ShipmentEdge", THROUGH_PARENT, "cursor node")
grant("Place", THROUGH_PARENT, "locode address")
grant("Money", THROUGH_PARENT, "amount currency")
grant("Carrier", THROUGH_PARENT, "code name scac iataCode")
grant("ShipmentReference", THROUGH_PARENT, "kind value")
grant("Account", THROUGH_PARENT, "id code name slaTier")
grant(
    "Milestone",
    THROUGH_PARENT,
    """
    id code sequence locationLocode plannedAt plannedSource estimatedAt estimatedSource actualAt
    actualSource status
    """,
)
grant("ShipmentDocument", THROUGH_PARENT, "documentType receivedAt source reference")
grant(
    "Leg",
    THROUGH_PARENT,
    "sequence mode originLocode destinationLocode carrier vesselName voyageNumber flightNumber",
)
grant(
    "TrackingEvent",
    THROUGH_PARENT,
    """
    id source sourceEventId classifier milestoneCode rawCode rawReason locationLocode locationName occurredAt
    utcOffsetMinutes receivedAt carrierCode signals unknownCodes retracted
    """,
)
grant("RecordShipmentDocumentSuccess", THROUGH_PARENT, "document shipment")

# ingest
grant(
    "IngestMessage",
    THROUGH_PARENT,
    """
    id format status receivedAt processedAt sizeBytes sha256 attempts eventCount acceptedCount
    parkedCount duplicateCount rejectedCount issues results acknowledgment
    """,
)
grant("IngestMessageConnection", THROUGH_PARENT, "edges pageInfo")
grant("IngestMessageEdge", THROUGH_PARENT, "cursor node")
grant("IngestIssue", THROUGH_PARENT, "position code reason fatal")
grant("IngestEventResult", THROUGH_PARENT, "position outcome eventId shipmentId code reason signals")
grant("ReplayIngestMessageSuccess", THROUGH_PARENT, "ingestMessage")
grant("UpsertCodeMappingSuccess", THROUGH_PARENT, "mapping")
grant("CodeMapping", THROUGH_PARENT, "system code carrierCode milestone signal rawOnly description")

# exceptions and detection
grant(
    "ShipmentException",
    THROUGH_PARENT,
    """
    id type category key status severity priorityScore explanation evidence occurrences reopenCount
    firstSeenAt lastSeenAt snoozedUntil resolvedAt resolutionReason shadow rule group shipment
    activities timeInState assignee assigneeTeam acknowledgedAt respondBy resolveBy
    escalationStepsFired nextEscalationAt resolution playbook
    """,
)
grant("ShipmentExceptionConnection", THROUGH_PARENT, "edges pageInfo")
grant("ShipmentExceptionEdge", THROUGH_PARENT, "cursor node")
grant(
    "ExceptionActivity",
    THROUGH_PARENT,
    "id kind fromStatus toStatus note customerVisible data actorKind createdAt",
)
grant("StatusDuration", THROUGH_PARENT, "status seconds")
grant("ExceptionTypeSpec", THROUGH_PARENT, "type category description parameters")
grant("RuleParameterSpec", THROUGH_PARENT, "name kind default minimum maximum description")
grant(
    "ExceptionGroup",
    THROUGH_PARENT,
    "id causeKind causeKey title status firstSeenAt lastSeenAt snoozedUntil exceptionCount",
)
grant(
    "Rule",
    THROUGH_PARENT,
    "id exceptionType name version mode scope parameters description createdBy createdAt versions",
)
grant(
    "DisruptionNotice",
    THROUGH_PARENT,
    "id cause title description locationLocode startsAt endsAt source isGlobal createdAt",
)
grant("UpsertRuleSuccess", THROUGH_PARENT, "rule")
grant("BacktestRuleSuccess", THROUGH_PARENT, "report")
grant(
    "BacktestReport",
    THROUGH_PARENT,
    "startsAt endsAt checkpoints shipments raised bySeverity currentRaised examples",
)
grant("KeyCount", THROUGH_PARENT, "key count")
grant("BacktestExample", THROUGH_PARENT, "shipmentId type key severity firstRaisedAt explanation")
grant("SnoozeExceptionSuccess", THROUGH_PARENT, "exception")
grant("SnoozeExceptionGroupSuccess", THROUGH_PARENT, "group snoozed")
grant("CreateDisruptionNoticeSuccess", THROUGH_PARENT, "notice")
# the stream carries exception changes only to exception readers (see the module docstring)
grant("ExceptionEvent", THROUGH_PARENT, "topic at exceptionId exception")
grant("ShipmentUpdate", THROUGH_PARENT, "topic at shipment exceptionId exception")

# workflow
grant("StaffUser", THROUGH_PARENT, "id name email roles")
grant("Team", THROUGH_PARENT, "id name role lead manager members")
grant(
    "ExceptionResolution",
    THROUGH_PARENT,
    "outcome resolvedAt rootCause actionCodes cost customerNotified note secondsToResolve",
)
grant("ExceptionPlaybook", THROUGH_PARENT, "playbook taken")
grant("Playbook", THROUGH_PARENT, "id name exceptionType slaTier valueBand builtIn actions")
grant("PlaybookAction", THROUGH_PARENT, "code title automatic policy")
grant("ActionPolicy", THROUGH_PARENT, "maxValue tiers severities")
grant("EscalationPolicy", THROUGH_PARENT, "id name severities enabled steps")
grant("EscalationStep", THROUGH_PARENT, "trigger afterMinutes target targetId")
grant("AssignmentRule", THROUGH_PARENT, "id name position match team user enabled")
grant(
    "ResponseTarget",
    THROUGH_PARENT,
    "severity slaTier respondWithinMinutes resolveWithinMinutes builtIn",
)
grant("ResolutionMetrics", THROUGH_PARENT, "precision byType byAction")
grant("RulePrecision", THROUGH_PARENT, "ruleId ruleVersion resolved falsePositives precision")
grant("MedianTime", THROUGH_PARENT, "key count medianSeconds")
grant("ExceptionChangeSuccess", THROUGH_PARENT, "exception")
grant("InvalidTransitionError", THROUGH_PARENT, "message status transition")
grant("ExceptionActivitySuccess", THROUGH_PARENT, "activity")
grant("ResolveExceptionSuccess", THROUGH_PARENT, "exception resolution")
grant("TeamSuccess", THROUGH_PARENT, "team")
grant("UpsertAssignmentRuleSuccess", THROUGH_PARENT, "rule")
grant("UpsertPlaybookSuccess", THROUGH_PARENT, "playbook")
grant("UpsertEscalationPolicySuccess", THROUGH_PARENT, "policy")
grant("SetResponseTargetSuccess", THROUGH_PARENT, "target")

# notifications and webhooks
grant("NotificationConnection", THROUGH_PARENT, "edges pageInfo unreadCount")
grant("NotificationEdge", THROUGH_PARENT, "cursor node")
grant("Notification", THROUGH_PARENT, "id title body topic exceptionId severity readAt createdAt")
grant("NotificationPreferences", THROUGH_PARENT, "mine account")
grant("NotificationPreference", THROUGH_PARENT, "categories minSeverity email inApp delivery isDefault")
grant("NotificationPreferenceSuccess", THROUGH_PARENT, "preference")
grant("NotifyDone", THROUGH_PARENT, "count")
grant(
    "WebhookEndpoint",
    THROUGH_PARENT,
    """
    id url description eventTypes accountId enabled disabledReason disabledAt consecutiveFailures
    retryAt createdAt
    """,
)
grant("WebhookEndpointSuccess", THROUGH_PARENT, "endpoint")
grant("WebhookEndpointSecretSuccess", THROUGH_PARENT, "endpoint secret")
grant("WebhookDeliveryConnection", THROUGH_PARENT, "edges pageInfo")
grant("WebhookDeliveryEdge", THROUGH_PARENT, "cursor node")
grant(
    "WebhookDelivery",
    THROUGH_PARENT,
    "id eventType status body attemptCount nextAttemptAt deliveredAt createdAt replayOf attempts",
)
grant("WebhookAttempt", THROUGH_PARENT, "at statusCode durationMs error responseExcerpt")
grant("ReplayWebhookDeliverySuccess", THROUGH_PARENT, "delivery")
grant("EmailTemplate", THROUGH_PARENT, "key subject text html builtIn fields")
grant("EmailTemplateSuccess", THROUGH_PARENT, "template")
grant("MailBranding", THROUGH_PARENT, "displayName fromAddress colour footer")
grant("MailBrandingSuccess", THROUGH_PARENT, "branding")

# background jobs and API clients
grant(
    "DeadLetter",
    THROUGH_PARENT,
    "id actorName queueName messageId args kwargs attempts error failedAt replayedAt replayMessageId",
)
grant("DeadLetterConnection", THROUGH_PARENT, "edges pageInfo")
grant("DeadLetterEdge", THROUGH_PARENT, "cursor node")
grant("ReplayDeadLetterSuccess", THROUGH_PARENT, "deadLetter")
grant("AlreadyReplayedError", THROUGH_PARENT, "message replayedAt replayMessageId")
grant(
    "ApiClient",
    THROUGH_PARENT,
    """
    id clientId name scopes account accessTokenTtlSeconds ownAccessTokenTtlSeconds createdAt
    secretRotatedAt previousSecretExpiresAt revokedAt status
    """,
)
grant("ApiScope", THROUGH_PARENT, "name description")
grant("CreateApiClientSuccess", THROUGH_PARENT, "apiClient clientSecret")
grant("RotateApiClientSecretSuccess", THROUGH_PARENT, "apiClient clientSecret")
grant("ExpireApiClientPreviousSecretSuccess", THROUGH_PARENT, "apiClient")
grant("RevokeApiClientSuccess", THROUGH_PARENT, "apiClient")
grant("ApiClientRevokedError", THROUGH_PARENT, "message revokedAt")

# ``node(id)``: the permission to read an object of each type its ids name; other types find nothing
NODE_ACCESS: dict[str, Permission] = {
    "Shipment": SHIPMENT_READ,
    "Account": SHIPMENT_READ,
    "IngestMessage": INGEST,
    "ShipmentException": EXCEPTION_READ,
    "ExceptionGroup": DETECTION,
    "Rule": DETECTION,
    "DisruptionNotice": DETECTION,
    "GlobalDisruptionNotice": DETECTION,
    "Team": WORKFLOW_READ,
    "User": WORKFLOW_READ,
    "DeadLetter": ADMIN,
    "ApiClient": ADMIN,
}


# --- checks in resolvers (data-dependent only) -----------------------------------------------------------


def allowed(principal: Principal, permission: Permission) -> bool:
    return permission.allows(Audience.of(principal))


def require(principal: Principal, permission: Permission) -> None:
    """For the data-dependent checks the map cannot make (see the module docstring)."""
    audience = Audience.of(principal)
    if not permission.allows(audience):
        raise Forbidden(permission.refusal(audience))


# --- enforcement: validation -------------------------------------------------------------------------


class AccessRule(ValidationRule):
    """Deny by default: every selected field must be in :data:`FIELD_ACCESS` and allowed to
    :attr:`audience`. Fields the schema does not have are left to the specification's rules (and, for
    callers without a hidden permission, its fields are not in the schema they are validated against)."""

    audience: ClassVar[Audience]

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._introspection_refused = False

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        parent = self.context.get_parent_type()
        name = node.name.value
        if parent is None or name == "__typename" or parent.name.startswith("__"):
            # unknown parents are the spec rules' to report; introspection's own types are reached only
            # through __schema and __type, checked next
            return
        if name in INTROSPECTION_FIELDS:
            if not INTROSPECT.allows(self.audience) and not self._introspection_refused:
                self._introspection_refused = True
                self._refuse(INTROSPECT.refusal(self.audience), node)
            return
        if self.context.get_field_def() is None:
            return  # not in the schema (or hidden from this caller): the spec's rules say so
        permission = FIELD_ACCESS.get((parent.name, name))
        if permission is None:
            self._refuse(
                f"Field '{parent.name}.{name}' has no entry in the access map, so nobody may use it.", node
            )
        elif not permission.allows(self.audience):
            self._refuse(permission.refusal(self.audience), node)

    def _refuse(self, message: str, node: FieldNode) -> None:
        self.report_error(GraphQLError(message, node, extensions={"code": "FORBIDDEN"}))


@functools.cache
def access_rule(audience: Audience) -> type[AccessRule]:
    # one class per audience, so validation caches see equal keys for equal audiences
    return type("AccessRule", (AccessRule,), {"audience": audience})


@functools.lru_cache(maxsize=1024)
def hidden_from(audience: Audience) -> frozenset[tuple[str, str]]:
    """The (type, field) pairs that do not exist for ``audience``."""
    return frozenset(
        key
        for key, permission in FIELD_ACCESS.items()
        if permission.hidden and not permission.allows(audience)
    )


def visible_schema(schema: GraphQLSchema, audience: Audience) -> GraphQLSchema:
    """``schema`` as ``audience`` sees it: without the fields hidden from it (for validation only; the
    copy has the same types, arguments and scalars, so every other answer is the same)."""
    hidden = hidden_from(audience)
    return _without(schema, hidden) if hidden else schema


@functools.lru_cache(maxsize=16)  # one per distinct set of hidden fields: a handful
def _without(schema: GraphQLSchema, hidden: frozenset[tuple[str, str]]) -> GraphQLSchema:
    def drop(config: Any) -> Any:
        fields = config["fields"]
        name = config["name"]
        return {
            **config,
            "fields": lambda: {f: d for f, d in fields().items() if (name, f) not in hidden},
        }

    def mappers(_context: Any) -> ConfigMapperMap:
        return cast(ConfigMapperMap, {SchemaElementKind.OBJECT: drop, SchemaElementKind.INTERFACE: drop})

    return GraphQLSchema(**map_schema_config(schema.to_kwargs(), mappers))


# --- enforcement: introspection ----------------------------------------------------------------------


def filter_introspection() -> None:
    """Make ``__Type.fields`` leave out the fields hidden from the caller (``info.context.principal``).

    graphql-core's introspection types are module-level singletons shared by every schema in the process,
    so the resolver is wrapped once, and answers as before when the context has no principal (a schema
    used in-process, ``milepost schema``)."""
    field: GraphQLField = cast(Any, introspection_types["__Type"]).fields["fields"]
    original = field.resolve
    if original is None or getattr(original, "filters_hidden_fields", False):
        return

    def fields(type_: Any, info: GraphQLResolveInfo[Any], **kwargs: Any) -> Any:
        listed = original(type_, info, **kwargs)
        principal = getattr(info.context, "principal", None)
        if listed is None or not isinstance(principal, Principal):
            return listed
        hidden = hidden_from(Audience.of(principal))
        return [item for item in listed if (type_.name, item[0]) not in hidden] if hidden else listed

    cast(Any, fields).filters_hidden_fields = True
    field.resolve = cast(Callable[..., Any], fields)
