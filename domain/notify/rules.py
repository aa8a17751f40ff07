"""Notifications as pure functions: who hears about what (preferences), what a shipper may see, webhook
signatures and retry schedules, e-mail templates and their validation. No I/O; the clock is passed in."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import ipaddress
import secrets
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

from domain.exceptions.models import Severity
from domain.workflow import topics

SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}

# --- what a shipper may see ----------------------------------------------------------------------------

# topics a shipper hears about (comments only when meant for them)
CUSTOMER_TOPICS = frozenset(
    {
        topics.OPENED,
        topics.REOPENED,
        topics.RESOLVED,
        topics.AUTO_RESOLVED,
        topics.CUSTOMER_NOTICE,
        topics.COMMENTED,
    }
)
# every topic, for staff and tenant webhooks
EVENT_TYPES = frozenset(topics.ALL_TOPICS)


def customer_may_hear(topic: str, payload: Mapping[str, Any]) -> bool:
    if topic not in CUSTOMER_TOPICS:
        return False
    return topic != topics.COMMENTED or bool(payload.get("customer_visible"))


def customer_view(exception: Mapping[str, Any]) -> dict[str, Any]:
    """The customer-safe part of an exception (the same fields a shipper reads through GraphQL): no rule,
    no cause group, no rule internals in the evidence, no notes, no assignment, no due times."""
    evidence = {k: v for k, v in (exception.get("evidence") or {}).items() if k != "rule"}
    return {
        "id": exception["id"],
        "type": exception["type"],
        "category": exception["category"],
        "severity": exception["severity"],
        "status": exception["status"],
        "key": exception.get("key"),
        "explanation": exception["explanation"],
        "first_seen_at": exception["first_seen_at"],
        "evidence": evidence,
    }


# --- preferences ---------------------------------------------------------------------------------------


class Delivery(StrEnum):
    IMMEDIATE = "immediate"
    DIGEST = "digest"


@dataclass(frozen=True)
class Preference:
    """What one person (or every user of an account) wants to hear. ``categories`` None: all."""

    categories: frozenset[str] | None = None
    min_severity: str = Severity.LOW
    email: bool = True
    in_app: bool = True
    delivery: Delivery = Delivery.IMMEDIATE


# Defaults when nobody set anything: staff hear everything in the app and get e-mail from high severity
# up, at once; shipper users get e-mail for everything about their own shipments, at once.
STAFF_DEFAULT = Preference(min_severity=Severity.LOW, email=True, in_app=True)
STAFF_EMAIL_FLOOR = Severity.HIGH
SHIPPER_DEFAULT = Preference(min_severity=Severity.LOW, email=True, in_app=True)


@dataclass(frozen=True)
class Channels:
    in_app: bool
    email: bool
    digest: bool  # e-mail later, in the digest, rather than now


def channels(
    preference: Preference | None,
    *,
    shipper: bool,
    category: str,
    severity: str,
    account: Preference | None = None,
) -> Channels:
    """How one recipient hears about one change. A user's own preference wins; a shipper user without one
    takes the account's; then the defaults. Staff without a preference get e-mail only from high up."""
    chosen = preference or (account if shipper else None)
    effective = chosen or (SHIPPER_DEFAULT if shipper else STAFF_DEFAULT)
    if effective.categories is not None and category not in effective.categories:
        return Channels(False, False, False)
    if SEVERITY_RANK[Severity(severity)] < SEVERITY_RANK[Severity(effective.min_severity)]:
        return Channels(False, False, False)
    email_on = effective.email
    if chosen is None and not shipper:
        email_on = SEVERITY_RANK[Severity(severity)] >= SEVERITY_RANK[STAFF_EMAIL_FLOOR]
    digest = email_on and effective.delivery == Delivery.DIGEST
    return Channels(effective.in_app, email_on and not digest, digest)


# --- webhooks: signatures, URLs, retries ---------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,`` and base64 HMAC-SHA256 of ``id.timestamp.body`` keyed
    with the secret's bytes (Standard Webhooks)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def check_url(url: str, *, development: bool) -> str | None:
    """Why a webhook URL is refused, or None: ``https`` only; ``http`` to a loopback host in development."""
    if len(url) > 2000:
        return "url: at most 2000 characters"
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"url: {url!r} is not an absolute http(s) URL"
    if parts.username or parts.password:
        return "url: credentials in the URL are not allowed; the signature authenticates us"
    if parts.scheme == "http":
        if not development:
            return "url: must be https"
        if not _loopback(parts.hostname):
            return "url: http is allowed only to a loopback host (in development); use https"
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


MAX_ATTEMPTS = 8
BASE_DELAY = dt.timedelta(seconds=30)
MAX_DELAY = dt.timedelta(hours=6)


def retry_after(header: str | None, now: dt.datetime) -> dt.timedelta | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as a delay from ``now``; None when absent or
    unreadable. Capped at the longest backoff, so a hostile endpoint cannot park deliveries for years."""
    if not header:
        return None
    value = header.strip()
    if value.isdigit():
        return min(dt.timedelta(seconds=int(value)), MAX_DELAY)
    try:
        when: dt.datetime = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(when - now, dt.timedelta()), MAX_DELAY)


def next_attempt(
    attempts: int, now: dt.datetime, retry_after_delay: dt.timedelta | None
) -> dt.datetime | None:
    """When to try again after ``attempts`` failed attempts (30 s, 1 min, 2 min, … at most 6 h), the
    endpoint's ``Retry-After`` winning when longer; None once the attempts are used up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    delay = min(BASE_DELAY * (1 << max(attempts - 1, 0)), MAX_DELAY)
    if retry_after_delay is not None:
        delay = max(delay, retry_after_delay)
    return now + delay


# --- e-mail templates ----------------------------------------------------------------------------------


class TemplateKey(StrEnum):
    EXCEPTION_OPENED = "exception_opened"
    EXCEPTION_UPDATE = "exception_update"
    EXCEPTION_RESOLVED = "exception_resolved"
    EXCEPTION_ESCALATED = "exception_escalated"
    EXCEPTION_COMMENTED = "exception_commented"
    DOCUMENTS_REQUESTED = "documents_requested"
    ENDPOINT_DISABLED = "endpoint_disabled"
    DIGEST = "digest"


_EXCEPTION = ("id", "type", "category", "severity", "status", "key", "explanation", "first_seen_at")
_SHIPMENT = ("reference", "mode", "origin", "destination")
_BRAND = ("name", "colour", "footer")
# the fields each template may use: top-level name -> its attributes (empty: a plain value)
CONTEXT: Mapping[TemplateKey, Mapping[str, tuple[str, ...]]] = {
    **{
        key: {
            "brand": _BRAND,
            "recipient": ("name",),
            "exception": _EXCEPTION,
            "shipment": _SHIPMENT,
            "link": (),
        }
        for key in (
            TemplateKey.EXCEPTION_OPENED,
            TemplateKey.EXCEPTION_UPDATE,
            TemplateKey.EXCEPTION_RESOLVED,
            TemplateKey.DOCUMENTS_REQUESTED,
        )
    },
    TemplateKey.EXCEPTION_ESCALATED: {
        "brand": _BRAND,
        "recipient": ("name",),
        "exception": _EXCEPTION,
        "shipment": _SHIPMENT,
        "link": (),
        "reason": (),
        "step": (),
    },
    TemplateKey.EXCEPTION_COMMENTED: {
        "brand": _BRAND,
        "recipient": ("name",),
        "exception": _EXCEPTION,
        "shipment": _SHIPMENT,
        "link": (),
        "comment": (),
    },
    TemplateKey.ENDPOINT_DISABLED: {"brand": _BRAND, "recipient": ("name",), "endpoint": ("url", "reason")},
    TemplateKey.DIGEST: {"brand": _BRAND, "recipient": ("name",), "items": (), "count": ()},
}
# loop variables a digest may use: {% for item in items %}{{ item.title }}{% endfor %}
DIGEST_ITEM = ("title", "body", "severity", "created_at")


@dataclass(frozen=True)
class Template:
    subject: str
    text: str
    html: str | None = None


_DEFAULTS = tomllib.loads((Path(__file__).parent / "default_templates.toml").read_text())


def default_template(key: TemplateKey) -> Template:
    entry = _DEFAULTS[key.value]
    return Template(entry["subject"], entry["text"], entry.get("html"))


_ENV = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
_HTML_ENV = SandboxedEnvironment(autoescape=True)


class TemplateError(ValueError):
    """A template refused at write time; the message names the part and the field."""


def check_template(key: TemplateKey, template: Template) -> None:
    """Parse each part and check every name and attribute it uses against the key's documented context."""
    allowed = CONTEXT[key]
    for part, source, env in (
        ("subject", template.subject, _ENV),
        ("text", template.text, _ENV),
        ("html", template.html, _HTML_ENV),
    ):
        if source is None:
            continue
        if len(source) > 50_000:
            raise TemplateError(f"{part}: at most 50000 characters")
        try:
            tree = env.parse(source)
        except TemplateSyntaxError as error:
            raise TemplateError(f"{part}: line {error.lineno}: {error.message}") from None
        loops = {n.target.name for n in tree.find_all(nodes.For) if isinstance(n.target, nodes.Name)}
        for node in tree.find_all(nodes.Getattr):
            if isinstance(node.node, nodes.Name):
                owner = node.node.name
                fields = DIGEST_ITEM if owner in loops else allowed.get(owner, ())
                if node.attr not in fields:
                    raise TemplateError(
                        f"{part}: {owner}.{node.attr} is not a field of {key.value} templates"
                    )
        for name in tree.find_all(nodes.Name):
            if name.ctx == "load" and name.name not in allowed and name.name not in loops:
                raise TemplateError(
                    f"{part}: {name.name!r} is not a field of {key.value} templates "
                    f"(fields: {', '.join(sorted(allowed))})"
                )


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str | None


def render(template: Template, context: Mapping[str, Any]) -> RenderedMail:
    subject = _ENV.from_string(template.subject).render(context).replace("\n", " ").strip()[:300]
    text = _ENV.from_string(template.text).render(context)
    html = _HTML_ENV.from_string(template.html).render(context) if template.html else None
    return RenderedMail(subject, text, html)


def digest_items(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: row[k] for k in DIGEST_ITEM} for row in rows]


def unique_ids(values: Sequence[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))
