"""DCSA 3.0 event versions: the latest version of an event replaces the earlier ones; a retraction
withdraws it.

DCSA: "An event overrides any other event that has the same ``eventID`` and an earlier
``eventUpdatedDateTime``", and ``isRetracted: true`` withdraws the event. Versions arrive in any order, so the
outcome depends only on the set of versions received, never on their arrival order:

- the version with the latest ``updated_at`` wins; a version without one loses to any version with one;
- at the same ``updated_at`` a retraction wins (withdrawing is the safe reading of a tie);
- a retraction without ``updated_at`` is final: nothing can be ordered after it;
- when two different versions still tie, the choice is arbitrary but fixed (the source was ambiguous);
- a later version after a retraction brings the event back (it overrides the retraction like any other);
- an event without an id cannot be overridden and is kept as it is (a retraction without one is dropped).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from domain.tracking.canonical import CanonicalEvent

_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)
_ALWAYS = dt.datetime.max.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class LatestVersions:
    events: list[CanonicalEvent]  # the current version of every event that is not withdrawn
    withdrawn: frozenset[str]  # the ids whose current version is a retraction


def _version_rank(event: CanonicalEvent) -> tuple[int, dt.datetime, bool, str]:
    if event.updated_at is None:
        rank, updated_at = (2, _ALWAYS) if event.is_retracted else (0, _NEVER)
    else:
        rank, updated_at = 1, event.updated_at
    return rank, updated_at, event.is_retracted, repr(event)


def _output_order(event: CanonicalEvent) -> tuple[dt.datetime, str, str]:
    return event.occurred_at.astimezone(dt.UTC), event.source_event_id or "", repr(event)


def latest_versions(events: Iterable[CanonicalEvent]) -> LatestVersions:
    """The current version of each event and the ids withdrawn, the same for any order of ``events``.

    Versions are told apart by ``(source, source_event_id)``. The result is ordered by ``occurred_at``.
    """
    latest: dict[tuple[str, str], CanonicalEvent] = {}
    anonymous: list[CanonicalEvent] = []
    for event in events:
        if event.source_event_id is None:
            if not event.is_retracted:
                anonymous.append(event)
            continue
        key = (event.source, event.source_event_id)
        current = latest.get(key)
        if current is None or _version_rank(event) > _version_rank(current):
            latest[key] = event
    current_events = [event for event in latest.values() if not event.is_retracted]
    withdrawn = frozenset(event_id for (_, event_id), event in latest.items() if event.is_retracted)
    return LatestVersions(sorted(current_events + anonymous, key=_output_order), withdrawn)
