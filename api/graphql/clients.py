"""GraphQL for partner API clients, for tenant admins: ``apiClients``, ``apiScopes``, ``createApiClient``,
``rotateApiClientSecret``, ``expireApiClientPreviousSecret`` and ``revokeApiClient``.

A client's secret appears in exactly two answers, the creation's and a rotation's; no query returns it
(only its argon2 hash is stored).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.graphql.context import Context
from api.graphql.relay import Node, expect_global_id, to_global_id
from api.graphql.shipments.types import Account, account_node
from api.graphql.tracking.types import InvalidInputError, NotFoundError
from domain.tenancy import models, repository, service
from domain.tenancy.rules import (
    MAX_SECRET_GRACE,
    SCOPE_DESCRIPTIONS,
    Scope,
    describe_unknown_scopes,
    token_lifetime_problem,
    unknown_scopes,
)

Info = strawberry.Info[Context, None]
T = TypeVar("T")


@strawberry.enum(description="Whether a client may still get and use tokens.")
class ApiClientStatus(Enum):
    ACTIVE = "active"
    REVOKED = "revoked"


@strawberry.type(description="An OAuth2 scope a partner client may be granted.")
class ApiScope:
    name: str = strawberry.field(description="The scope as clients request it, e.g. `shipments:read`.")
    description: str = strawberry.field(description="What it allows.")


@strawberry.type(
    description="A partner system that authenticates with OAuth2 client credentials (`POST /oauth/token`)."
)
class ApiClient(Node):
    row: strawberry.Private[models.ApiClient]

    @strawberry.field(description="The public client id, sent with the secret to get tokens.")
    def client_id(self) -> str:
        return self.row.client_id

    @strawberry.field(description="What the client is, for people.")
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="The scopes it may request, sorted.")
    def scopes(self) -> list[str]:
        return sorted(self.row.scopes)

    @strawberry.field(description="The shipper account it is limited to; null for the whole tenant.")
    async def account(self, info: Info) -> Account | None:
        if self.row.account_id is None:
            return None
        row = await info.context.loaders.account.load(self.row.account_id)
        return account_node(row) if row is not None else None

    @strawberry.field(
        description="Seconds its access tokens live: its own lifetime or the default, within the maximum."
    )
    def access_token_ttl_seconds(self, info: Info) -> int:
        return info.context.state.tokens.lifetime(self.row.access_token_ttl_seconds)

    @strawberry.field(description="Its own token lifetime in seconds; null when it uses the default.")
    def own_access_token_ttl_seconds(self) -> int | None:
        return self.row.access_token_ttl_seconds

    @strawberry.field(description="When it was created.")
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field(description="When its secret was last replaced; null if never.")
    def secret_rotated_at(self) -> dt.datetime | None:
        return self.row.secret_rotated_at

    @strawberry.field(
        description="Until when the secret before the last rotation is still accepted (in the past: it "
        "no longer is); null if the secret was never rotated."
    )
    def previous_secret_expires_at(self) -> dt.datetime | None:
        return self.row.previous_secret_expires_at

    @strawberry.field(description="When it was revoked; null while active.")
    def revoked_at(self) -> dt.datetime | None:
        return self.row.revoked_at

    @strawberry.field(description="Active or revoked.")
    def status(self) -> ApiClientStatus:
        return ApiClientStatus.REVOKED if self.row.revoked_at is not None else ApiClientStatus.ACTIVE


def api_client_node(row: models.ApiClient) -> ApiClient:
    return ApiClient(id=to_global_id("ApiClient", row.id), row=row)


@strawberry.input(description="A new partner client.")
class CreateApiClientInput:
    name: str = strawberry.field(description="What the client is, 1 to 200 characters.")
    scopes: list[str] = strawberry.field(description="At least one scope of `apiScopes`.")
    account_id: strawberry.ID | None = strawberry.field(
        default=None, description="Limit it to one shipper account; null: the whole tenant."
    )
    access_token_ttl_seconds: int | None = strawberry.field(
        default=None,
        description="Its own token lifetime in seconds (60 to MILEPOST_ACCESS_TOKEN_MAX_TTL_SECONDS); "
        "null: the default.",
    )


@strawberry.type(description="The client was created; its secret is shown here once and never again.")
class CreateApiClientSuccess:
    api_client: ApiClient = strawberry.field(description="The new client.")
    client_secret: str = strawberry.field(description="Its secret. Store it now: it cannot be shown again.")


@strawberry.type(description="A new secret was issued; it is shown here once and never again.")
class RotateApiClientSecretSuccess:
    api_client: ApiClient = strawberry.field(description="The client, with its new rotation times.")
    client_secret: str = strawberry.field(
        description="The new secret. Store it now: it cannot be shown again."
    )


@strawberry.type(description="The previous secret is no longer accepted.")
class ExpireApiClientPreviousSecretSuccess:
    api_client: ApiClient = strawberry.field(description="The client.")


@strawberry.type(description="The client is revoked: no new tokens, and the ones it holds are refused.")
class RevokeApiClientSuccess:
    api_client: ApiClient = strawberry.field(description="The revoked client.")


@strawberry.type(description="The client is revoked; nothing more can be done with it.")
class ApiClientRevokedError:
    message: str = strawberry.field(description="What happened, in words.")
    revoked_at: dt.datetime = strawberry.field(description="When it was revoked.")


CreateApiClientPayload = Annotated[
    CreateApiClientSuccess | InvalidInputError | NotFoundError,
    strawberry.union("CreateApiClientPayload", description="The new client with its secret, or why not."),
]
RotateApiClientSecretPayload = Annotated[
    RotateApiClientSecretSuccess | NotFoundError | InvalidInputError | ApiClientRevokedError,
    strawberry.union("RotateApiClientSecretPayload", description="The new secret, or why not."),
]
ExpireApiClientPreviousSecretPayload = Annotated[
    ExpireApiClientPreviousSecretSuccess | NotFoundError | ApiClientRevokedError,
    strawberry.union("ExpireApiClientPreviousSecretPayload", description="The client, or why not."),
]
RevokeApiClientPayload = Annotated[
    RevokeApiClientSuccess | NotFoundError | ApiClientRevokedError,
    strawberry.union("RevokeApiClientPayload", description="The revoked client, or why not."),
]


def _now(info: Info) -> dt.datetime:
    return info.context.state.clock()


def _revoked(error: service.ClientRevoked, id: strawberry.ID) -> ApiClientRevokedError:
    return ApiClientRevokedError(
        message=f"API client {id} was revoked at {error.revoked_at.isoformat()}", revoked_at=error.revoked_at
    )


async def _attempt(
    info: Info, id: strawberry.ID, work: Callable[[AsyncSession, uuid.UUID], Awaitable[T]]
) -> T | NotFoundError | ApiClientRevokedError:
    """``work`` on the client ``id`` names, in one transaction; another tenant's client is not found."""
    value = expect_global_id(id, "ApiClient")
    if value is None:
        return NotFoundError(message=f"no API client {id}")
    try:
        return await info.context.loaders.run(lambda session: work(session, value))
    except service.ClientNotFound:
        return NotFoundError(message=f"no API client {id}")
    except service.ClientRevoked as error:
        return _revoked(error, id)


# --- queries ---------------------------------------------------------------------------------------------


async def api_clients(info: Info, include_revoked: bool = False) -> list[ApiClient]:
    principal = info.context.principal
    scope = principal.scope
    rows = await info.context.loaders.run(
        lambda session: repository.list_api_clients(session, scope, include_revoked=include_revoked)
    )
    return [api_client_node(row) for row in rows]


def api_scopes(info: Info) -> list[ApiScope]:
    return [ApiScope(name=str(scope), description=SCOPE_DESCRIPTIONS[scope]) for scope in sorted(Scope)]


async def api_client_by_id(info: Info, client_row_id: uuid.UUID) -> ApiClient | None:
    """For ``node(id)``, which has checked the caller."""
    principal = info.context.principal
    scope = principal.scope
    found = await info.context.loaders.run(
        lambda session: repository.api_clients_by_id(session, scope, [client_row_id])
    )
    row = found.get(client_row_id)
    return api_client_node(row) if row is not None else None


# --- mutations -------------------------------------------------------------------------------------------


async def create_api_client(info: Info, input: CreateApiClientInput) -> CreateApiClientPayload:
    context = info.context
    maximum = context.state.settings.access_token_max_ttl_seconds
    name = input.name.strip()
    if not name or len(name) > 200:
        return InvalidInputError(field="input.name", message="a client's name must be 1 to 200 characters")
    unknown = unknown_scopes(input.scopes)
    if unknown:
        return InvalidInputError(field="input.scopes", message=describe_unknown_scopes(unknown))
    if not input.scopes:
        return InvalidInputError(field="input.scopes", message="a client needs at least one scope")
    if input.access_token_ttl_seconds is not None:
        problem = token_lifetime_problem(input.access_token_ttl_seconds, maximum)
        if problem:
            return InvalidInputError(field="input.accessTokenTtlSeconds", message=problem)
    account_id: uuid.UUID | None = None
    if input.account_id is not None:
        account_id = expect_global_id(input.account_id, "Account", argument="input.accountId")
        if account_id is None or await context.loaders.account.load(account_id) is None:
            return NotFoundError(message=f"no account {input.account_id}")
    scope = context.principal.scope

    async def work(session: AsyncSession) -> service.IssuedClient:
        return await service.create_api_client(
            session,
            scope,
            name=name,
            scopes=input.scopes,
            account_id=account_id,
            access_token_ttl_seconds=input.access_token_ttl_seconds,
            max_token_ttl_seconds=maximum,
        )

    issued = await context.loaders.run(work)
    return CreateApiClientSuccess(
        api_client=api_client_node(issued.client), client_secret=issued.client_secret
    )


async def rotate_api_client_secret(
    info: Info,
    id: strawberry.ID,
    grace_hours: Annotated[
        float | None,
        strawberry.argument(
            description="Hours the current secret keeps working (0: stops now); default "
            "MILEPOST_CLIENT_SECRET_GRACE_HOURS."
        ),
    ] = None,
) -> RotateApiClientSecretPayload:
    context = info.context
    hours = context.state.settings.client_secret_grace_hours if grace_hours is None else grace_hours
    limit = MAX_SECRET_GRACE.total_seconds() / 3600
    if not math.isfinite(hours) or not 0 <= hours <= limit:
        return InvalidInputError(field="graceHours", message=f"must be 0 to {limit:g} hours, got {hours:g}")
    scope = context.principal.scope
    now = _now(info)

    async def work(session: AsyncSession, client_row_id: uuid.UUID) -> service.IssuedClient:
        return await service.rotate_client_secret(
            session, scope, client_row_id, now=now, grace=dt.timedelta(hours=hours)
        )

    result = await _attempt(info, id, work)
    if isinstance(result, NotFoundError | ApiClientRevokedError):
        return result
    return RotateApiClientSecretSuccess(
        api_client=api_client_node(result.client), client_secret=result.client_secret
    )


async def expire_api_client_previous_secret(
    info: Info, id: strawberry.ID
) -> ExpireApiClientPreviousSecretPayload:
    context = info.context
    scope = context.principal.scope
    now = _now(info)

    async def work(session: AsyncSession, client_row_id: uuid.UUID) -> models.ApiClient:
        return await service.expire_previous_secret(session, scope, client_row_id, now=now)

    result = await _attempt(info, id, work)
    if isinstance(result, NotFoundError | ApiClientRevokedError):
        return result
    return ExpireApiClientPreviousSecretSuccess(api_client=api_client_node(result))


async def revoke_api_client(info: Info, id: strawberry.ID) -> RevokeApiClientPayload:
    context = info.context
    scope = context.principal.scope
    now = _now(info)
    lifetime = dt.timedelta(seconds=context.state.settings.access_token_max_ttl_seconds)

    async def work(session: AsyncSession, client_row_id: uuid.UUID) -> models.ApiClient:
        return await service.revoke_api_client(
            session, scope, client_row_id, now=now, max_token_lifetime=lifetime
        )

    result = await _attempt(info, id, work)
    if isinstance(result, NotFoundError | ApiClientRevokedError):
        return result
    # committed: this process refuses its tokens from now on; the others hear it by NOTIFY
    context.state.tokens.revoked_client(result.id)
    return RevokeApiClientSuccess(api_client=api_client_node(result))
