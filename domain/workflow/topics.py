"""The outbox topics an exception's life writes, and what their payloads carry (ids and codes, never prose).

Detection writes the first four (``domain.exceptions.service``); the workflow writes the rest. Every
payload carries the base keys below; notifications, subscriptions and escalation read nothing else from
the row they announce without reloading it. A topic is written in the transaction that made the change, so
a rolled-back change announces nothing.
"""

from __future__ import annotations

from typing import Any

# detection
OPENED = "exception.opened"
UPDATED = "exception.updated"
REOPENED = "exception.reopened"
AUTO_RESOLVED = "exception.auto_resolved"
# workflow
ACKNOWLEDGED = "exception.acknowledged"
ASSIGNED = "exception.assigned"  # + assignee_user_id, assignee_team_id (str or None)
STATUS_CHANGED = "exception.status_changed"  # + from_status (in_progress, closed, snoozed by a person, ...)
COMMENTED = "exception.commented"  # + activity_id, customer_visible (bool), author_kind ("staff" | "shipper")
RESOLVED = "exception.resolved"  # + outcome, root_cause, customer_notified
ESCALATED = "exception.escalated"  # + step (int), reason, target_user_ids [str], target_team_id (str or None)
# a playbook action asks for the shipper to be told: + template (an e-mail template key), action_id
CUSTOMER_NOTICE = "exception.customer_notice"

DETECTION_TOPICS = (OPENED, UPDATED, REOPENED, AUTO_RESOLVED)
WORKFLOW_TOPICS = (ACKNOWLEDGED, ASSIGNED, STATUS_CHANGED, COMMENTED, RESOLVED, ESCALATED, CUSTOMER_NOTICE)
ALL_TOPICS = DETECTION_TOPICS + WORKFLOW_TOPICS

# the keys every exception topic's payload has (all strings)
BASE_KEYS = ("exception_id", "shipment_id", "account_id", "type", "category", "status", "severity")


def base_payload(row: Any) -> dict[str, Any]:
    """The base payload of a ``ShipmentException`` row (typed loosely: the models import this module)."""
    return {
        "exception_id": str(row.id),
        "shipment_id": str(row.shipment_id),
        "account_id": str(row.account_id),
        "type": row.exception_type,
        "category": row.category,
        "status": row.status,
        "severity": row.severity,
    }
