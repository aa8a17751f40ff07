"""Who may read what. Issue 6 turns this into the full (type, field) → permission map."""

from __future__ import annotations

from api.graphql.relay import Forbidden
from domain.tenancy.models import Role
from domain.tenancy.principal import Principal
from domain.tenancy.rules import Scope


def require_shipment_read(principal: Principal) -> None:
    """Staff and shipper users read shipments (shippers only their account's, by scope); partner clients
    need the ``shipments:read`` scope."""
    if principal.subject_kind == "user":
        return
    if Scope.SHIPMENTS_READ not in principal.scopes:
        raise Forbidden(f"this operation needs the '{Scope.SHIPMENTS_READ}' scope")


def require_ingest_admin(principal: Principal) -> None:
    """Ingest messages and code mappings: admin or operations staff, or partner clients with ``ingest``."""
    if principal.subject_kind == "api_client":
        if Scope.INGEST in principal.scopes:
            return
        raise Forbidden(f"this operation needs the '{Scope.INGEST}' scope")
    if principal.is_shipper or not principal.roles & {"admin", "operations"}:
        raise Forbidden("this operation needs the admin or operations role")


def _require_staff(principal: Principal, roles: frozenset[str], what: str) -> None:
    if principal.subject_kind != "user" or principal.is_shipper or not principal.roles & roles:
        raise Forbidden(f"this operation needs the {what} role")


_DETECTION_STAFF = frozenset({"admin", "operations"})
# the staff who work exceptions day to day; sales may read them, finance has its own views
_EXCEPTION_WORKERS = _DETECTION_STAFF | {"customer_service", "documentation"}
_EXCEPTION_READERS = _EXCEPTION_WORKERS | {"sales"}


def require_exception_read(principal: Principal) -> None:
    """Exceptions: admin, operations, customer service, documentation and sales staff; shippers (their own
    account's, customer fields only, by scope); partner clients with the ``exceptions:read`` scope.
    Finance is denied."""
    if principal.subject_kind == "api_client":
        if Scope.EXCEPTIONS_READ not in principal.scopes:
            raise Forbidden(f"this operation needs the '{Scope.EXCEPTIONS_READ}' scope")
        return
    if principal.is_shipper:
        return
    _require_staff(
        principal, _EXCEPTION_READERS, "admin, operations, customer_service, documentation or sales"
    )


def require_exception_work(principal: Principal) -> None:
    """Acknowledge, start, assign, resolve, close, reopen and record actions: admin, operations, customer
    service and documentation staff, or partner clients with ``exceptions:write``."""
    if principal.subject_kind == "api_client":
        if Scope.EXCEPTIONS_WRITE not in principal.scopes:
            raise Forbidden(f"this operation needs the '{Scope.EXCEPTIONS_WRITE}' scope")
        return
    _require_staff(principal, _EXCEPTION_WORKERS, "admin, operations, customer_service or documentation")


def require_exception_comment(principal: Principal) -> None:
    """Comments: whoever works exceptions, and shipper users on their own account's (by scope)."""
    if principal.subject_kind == "user" and principal.is_shipper:
        return
    require_exception_work(principal)


def require_workflow_read(principal: Principal) -> None:
    """Teams, playbooks, policies and targets: the staff who work exceptions."""
    _require_staff(principal, _EXCEPTION_WORKERS, "admin, operations, customer_service or documentation")


def require_detection_staff(principal: Principal) -> None:
    """Rules, groups, notices, backtests and snoozes: admin or operations staff."""
    _require_staff(principal, _DETECTION_STAFF, "admin or operations")


def require_rule_admin(principal: Principal) -> None:
    """Changing a rule changes what everyone's queue holds: admin only."""
    _require_staff(principal, frozenset({"admin"}), "admin")


def require_document_record(principal: Principal) -> None:
    """Recording a received document: documentation staff, and admin or operations."""
    _require_staff(principal, _DETECTION_STAFF | {"documentation"}, "documentation, admin or operations")


def require_admin(principal: Principal) -> None:
    """Staff users with the admin role: background jobs (dead letters and their replay), and the workflow's
    teams, assignment rules, response targets, playbooks and escalation policies (they shape everyone's
    queue)."""
    _require_staff(principal, frozenset({"admin"}), "admin")


def may_introspect(principal: Principal) -> bool:
    """Introspection (``__schema``, ``__type``): staff users and partner clients; shippers may not (they
    need no map of what the staff API offers). Anonymous callers never reach GraphQL."""
    return principal.subject_kind == "api_client" or principal.is_staff


def require_user(principal: Principal) -> None:
    """In-app notifications, preferences and following belong to people (staff and shipper users);
    partner clients have webhooks."""
    if principal.subject_kind != "user":
        raise Forbidden("notifications belong to users; partner clients use webhooks")


def require_endpoint_manager(principal: Principal) -> None:
    """Webhook endpoints and their delivery log: tenant admins (the tenant's and any account's endpoints),
    shipper users (their own account's, by scope) and partner clients with ``webhooks:manage`` (like an
    admin, or like the account's users for a client bound to an account)."""
    if principal.subject_kind == "api_client":
        if Scope.WEBHOOKS_MANAGE in principal.scopes:
            return
        raise Forbidden(f"this operation needs the '{Scope.WEBHOOKS_MANAGE}' scope")
    if principal.is_shipper or principal.has_role(Role.ADMIN):
        return
    raise Forbidden("webhook endpoints are managed by tenant admins and by shipper users for their account")


def require_follow(principal: Principal) -> None:
    """Following an exception: users who may read it (shippers: their own account's, by scope)."""
    require_user(principal)
    require_exception_read(principal)


def require_client_admin(principal: Principal) -> None:
    """Partner API clients (create, rotate secrets, revoke, list): staff admins only. No scope lets a
    client manage clients, which would let it grant itself any scope."""
    _require_staff(principal, frozenset({"admin"}), "admin")
