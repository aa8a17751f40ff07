"""Document queries."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped
from domain.documents.models import ShipmentDocument

# a shipment's documents as every list shows them: in the order they arrived
DOCUMENT_ORDER = (ShipmentDocument.received_at, ShipmentDocument.document_type)


async def documents_by_shipment(
    session: AsyncSession, scope: TenantScope, shipment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ShipmentDocument]]:
    statement = (
        scoped(select(ShipmentDocument), ShipmentDocument, scope)
        .where(ShipmentDocument.shipment_id.in_(shipment_ids))
        .order_by(ShipmentDocument.shipment_id, *DOCUMENT_ORDER)
    )
    grouped: dict[uuid.UUID, list[ShipmentDocument]] = defaultdict(list)
    for document in (await session.execute(statement)).scalars():
        grouped[document.shipment_id].append(document)
    return grouped
