from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from domain.db import TenantScope
from domain.tenancy.models import STAFF_ROLES, Role


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (staff or shipper) or a partner API client, always inside one tenant."""

    tenant_id: uuid.UUID
    subject_kind: str  # "user" | "api_client"
    subject_id: uuid.UUID
    account_id: uuid.UUID | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def scope(self) -> TenantScope:
        return TenantScope(tenant_id=self.tenant_id, account_id=self.account_id)

    @property
    def is_shipper(self) -> bool:
        return self.account_id is not None

    @property
    def is_staff(self) -> bool:
        return self.subject_kind == "user" and bool(self.roles & STAFF_ROLES)

    def has_role(self, role: Role) -> bool:
        return role in self.roles
