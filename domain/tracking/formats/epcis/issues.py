"""The stable issue codes of the EPCIS adapter (``ParseIssue.code``)."""

from __future__ import annotations

JSON = "epcis.json"  # fatal: not UTF-8 JSON
TOO_DEEP = "epcis.too_deep"  # fatal: nesting deeper than decode.MAX_DEPTH
NOT_DOCUMENT = "epcis.not_document"  # fatal: not an EPCISDocument
VERSION = "epcis.version"  # fatal: schemaVersion is not 2.x
SCHEMA = "epcis.schema"  # fatal for the envelope; for an event, that event is skipped
VOCABULARY = "epcis.vocabulary"  # a bizStep/disposition neither CBV 2.0 nor a URI: event skipped
UNSUPPORTED_EVENT_TYPE = "epcis.unsupported_event_type"  # an extension event type: event skipped
EVENT_IN_FUTURE = "epcis.event_in_future"  # eventTime/declarationTime beyond now + 1 day: event skipped
DUPLICATE_EVENT = "epcis.duplicate_event"  # a second event with the same id in one document: skipped
NO_VALID_EVENT = "epcis.no_valid_event"  # fatal: the document has events and none of them could be read
CONTEXT = "epcis.context"  # the standard JSON-LD context is missing: events are still read
IDENTIFIER = "epcis.identifier"  # a GS1 key with a wrong check digit: not used, the event is kept
