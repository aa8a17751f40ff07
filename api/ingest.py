"""``POST /ingest/{format}``: carrier and partner messages in, per-event results out.

Partner systems authenticate with an OAuth2 token carrying the ``ingest`` scope (staff with the admin or
operations role may post too). AfterShip and EasyPost cannot send our tokens: their webhooks name the
tenant in the query (``?tenant=<slug>``) and are trusted only through the HMAC signature configured for
that tenant's endpoint. The raw body is committed before parsing, so nothing accepted is ever lost.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from api.auth.bearer import Unauthorized, authenticate
from api.state import AppState
from domain.db import TenantScope, scoped, scoped_transaction
from domain.tenancy.models import Role
from domain.tenancy.principal import Principal
from domain.tenancy.rules import Scope
from domain.tenancy.service import find_tenant_by_slug
from domain.tracking.formats.webhook_signatures import SignatureError, verify
from domain.tracking.ingest import (
    FORMATS,
    IngestError,
    body_hash,
    find_by_idempotency_key,
    mark_failed,
    parse_body,
    process,
    receive,
)
from domain.tracking.models import IngestEndpoint, IngestMessage, IngestStatus

log = structlog.get_logger("milepost.ingest")

WEBHOOK_FORMATS = ("aftership", "easypost")
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "domain/tracking/formats/schemas/events.schema.json"
X12_MEDIA_TYPE = "application/edi-x12"


def _error(status: int, code: str, description: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": description, **extra}, status_code=status)


def report(message: IngestMessage) -> dict[str, Any]:
    data: dict[str, Any] = {
        "messageId": str(message.id),
        "format": message.format,
        "status": message.status,
        "receivedAt": message.received_at.isoformat(),
        "sha256": message.sha256,
        "counts": {
            "events": message.event_count,
            "accepted": message.accepted_count,
            "parked": message.parked_count,
            "duplicate": message.duplicate_count,
            "rejected": message.rejected_count,
        },
        "results": message.results,
        "issues": message.errors,
    }
    if message.acknowledgment is not None:
        data["acknowledgment"] = message.acknowledgment.decode("utf-8", "replace")
    return data


def _response(request: Request, message: IngestMessage, replayed: bool = False) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    status = 422 if message.status == IngestStatus.REJECTED else 200
    accepts_x12 = X12_MEDIA_TYPE in request.headers.get("accept", "")
    if message.format == "x12" and accepts_x12 and message.acknowledgment is not None:
        headers["X-Milepost-Message-Id"] = str(message.id)
        return Response(
            message.acknowledgment, status_code=status, media_type=X12_MEDIA_TYPE, headers=headers
        )
    # orjson: a message's report lists a result per event (up to 10,000)
    return Response(
        orjson.dumps(report(message)), status_code=status, media_type="application/json", headers=headers
    )


def _may_ingest(principal: Principal) -> bool:
    if principal.subject_kind == "api_client":
        return Scope.INGEST in principal.scopes
    return principal.has_role(Role.ADMIN) or principal.has_role(Role.OPERATIONS)


class IngestEndpointApp:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def handle(self, request: Request) -> Response:
        format = request.path_params["format"]
        if format not in FORMATS:
            return _error(
                404, "unknown_format", f"no ingest format {format!r}; use one of {', '.join(FORMATS)}"
            )
        principal: Principal | None = None
        scope: TenantScope
        if request.headers.get("authorization") or format not in WEBHOOK_FORMATS:
            try:
                principal = authenticate(request, self.state.tokens)
            except Unauthorized as error:
                return error.response()
            if not _may_ingest(principal):
                return _error(403, "insufficient_scope", "ingesting needs the 'ingest' scope")
            scope = TenantScope(principal.tenant_id)
        else:
            slug = request.query_params.get("tenant", "")
            found = await self._tenant(slug)
            if found is None:
                return _error(401, "unauthorized", "webhooks name their tenant with ?tenant=<slug>")
            scope = found
        body = await request.body()
        refusal = await self._check_signature(format, scope, request, body, signed_only=principal is None)
        if refusal is not None:
            return refusal
        return await self._ingest(request, format, scope, principal, body)

    async def _tenant(self, slug: str) -> TenantScope | None:
        if not slug:
            return None
        async with self.state.sessions() as session, session.begin():
            tenant = await find_tenant_by_slug(session, slug)
        return TenantScope(tenant.id) if tenant is not None else None

    async def _check_signature(
        self, format: str, scope: TenantScope, request: Request, body: bytes, *, signed_only: bool
    ) -> Response | None:
        if format not in WEBHOOK_FORMATS:
            return None
        async with scoped_transaction(self.state.sessions, scope) as session:
            endpoint = (
                await session.execute(
                    scoped(select(IngestEndpoint), IngestEndpoint, scope).where(
                        IngestEndpoint.format == format
                    )
                )
            ).scalar_one_or_none()
        must_sign = signed_only or (endpoint is not None and endpoint.require_signature)
        if not must_sign:
            return None
        try:
            verify(format, list(endpoint.secrets) if endpoint else [], request.headers, body)
        except SignatureError as error:
            # an unknown tenant and a bad signature look alike to an anonymous caller
            return _error(401, f"signature_{error.reason}", str(error))
        return None

    async def _ingest(
        self, request: Request, format: str, scope: TenantScope, principal: Principal | None, body: bytes
    ) -> Response:
        now = self.state.clock()
        key = request.headers.get("idempotency-key")
        client_id = principal.subject_id if principal and principal.subject_kind == "api_client" else None
        if key is not None:
            earlier = await self._earlier(scope, key)
            if earlier is not None:
                return self._idempotent(request, earlier, body)
        try:
            async with scoped_transaction(self.state.sessions, scope) as session:
                message = await receive(
                    session,
                    scope,
                    format=format,
                    body=body,
                    content_type=request.headers.get("content-type"),
                    api_client_id=client_id,
                    idempotency_key=key,
                    now=now,
                )
        except IngestError as error:
            return _error(400, error.code, str(error))
        except IntegrityError:  # the same Idempotency-Key raced us: answer with the winner's result
            earlier = await self._earlier(scope, key or "")
            if earlier is None:
                raise
            return self._idempotent(request, earlier, body)

        message_id = message.id
        parsed = await asyncio.to_thread(parse_body, format, body, now)
        try:
            async with scoped_transaction(self.state.sessions, scope) as session:
                # the row as just committed: attached again rather than read back with its whole body
                session.add(message)
                await process(session, scope, message, parsed, now=now)
        except Exception as error:
            log.exception("ingest processing failed", message_id=str(message_id), format=format)
            async with scoped_transaction(self.state.sessions, scope) as session:
                await mark_failed(session, scope, message_id, f"{type(error).__name__}")
            return _error(
                500,
                "processing_failed",
                "the message is stored and can be replayed; see the logs for this request id",
                messageId=str(message_id),
                requestId=request.scope.get("state", {}).get("request_id"),
            )
        log.info(
            "message ingested",
            message_id=str(message.id),
            format=format,
            status=message.status,
            events=message.event_count,
            accepted=message.accepted_count,
            duplicate=message.duplicate_count,
            parked=message.parked_count,
            rejected=message.rejected_count,
        )
        return _response(request, message)

    async def _earlier(self, scope: TenantScope, key: str) -> IngestMessage | None:
        async with scoped_transaction(self.state.sessions, scope) as session:
            return await find_by_idempotency_key(session, scope, key)

    def _idempotent(self, request: Request, earlier: IngestMessage, body: bytes) -> Response:
        if earlier.sha256 != body_hash(body):
            return _error(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different body; use a new key for a new message",
                messageId=str(earlier.id),
            )
        return _response(request, earlier, replayed=True)


async def events_schema(request: Request) -> Response:
    return FileResponse(SCHEMA_FILE, media_type="application/schema+json")


def ingest_routes(state: AppState) -> list[BaseRoute]:
    return [
        Route("/ingest/events/schema.json", events_schema, methods=["GET"]),
        Route("/ingest/{format}", IngestEndpointApp(state).handle, methods=["POST"]),
    ]
