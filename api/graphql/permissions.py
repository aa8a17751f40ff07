"""Who may read what. Issue 6 turns this into the full (type, field) → permission map."""

from __future__ import annotations

from api.graphql.relay import Forbidden
from domain.tenancy.principal import Principal


def require_shipment_read(principal: Principal) -> None:
    """Staff and shipper users read shipments (shippers only their account's, by scope); partner clients
    need the ``shipments:read`` scope."""
    if principal.subject_kind == "user":
        return
    if "shipments:read" not in principal.scopes:
        raise Forbidden("this operation needs the 'shipments:read' scope")


def require_ingest_admin(principal: Principal) -> None:
    """Ingest messages and code mappings: admin or operations staff, or partner clients with ``ingest``."""
    if principal.subject_kind == "api_client":
        if "ingest" in principal.scopes:
            return
        raise Forbidden("this operation needs the 'ingest' scope")
    if principal.is_shipper or not principal.roles & {"admin", "operations"}:
        raise Forbidden("this operation needs the admin or operations role")


def require_admin(principal: Principal) -> None:
    """Background-job administration (dead letters and their replay): staff users with the admin role."""
    if principal.subject_kind != "user" or principal.is_shipper or "admin" not in principal.roles:
        raise Forbidden("this operation needs the admin role")
