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

from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from domain.exceptions.models import Severity
from domain.exceptions.rules import STAFF_TOPICS, customer_sees_change
from domain.workflow import topics

SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}

# --- what a shipper may see ----------------------------------------------------------------------------
# Which fields and which changes a shipper may see is decided once, in domain.exceptions.rules
# (``customer_view``, ``customer_sees_change``), for GraphQL, live events and notifications alike. Here only
# what is worth telling a person: shipper users are e-mailed (and notified in the app) about these topics;
# their account's webhooks may subscribe to any change the shipper may see.
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
ACCOUNT_EVENT_TYPES = EVENT_TYPES - STAFF_TOPICS
# the keys of a change's payload an account's webhook receives (ids of staff, reasons and steps do not leave)
CUSTOMER_CHANGE_KEYS = (*topics.BASE_KEYS, "from_status", "outcome", "template")


def customer_may_hear(topic: str, payload: Mapping[str, Any]) -> bool:
    """Whether the exception's shipper users are told of this change (in the app and by e-mail)."""
    return topic in CUSTOMER_TOPICS and customer_sees_change(topic, payload)


def customer_change(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {key: payload[key] for key in CUSTOMER_CHANGE_KEYS if key in payload}


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
    """Why a webhook URL is refused, or None: ``https`` to a public host; in development also ``http`` to a
    loopback host (and https to any host)."""
    if len(url) > 2000:
        return "url: at most 2000 characters"
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"url: {url!r} is not an absolute http(s) URL"
    if parts.username or parts.password:
        return "url: credentials in the URL are not allowed; the signature authenticates us"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        return f"url: {url!r} has an invalid port"
    host = parts.hostname
    if parts.scheme == "http":
        if not development:
            return "url: must be https"
        if not _loopback(host):
            return "url: http is allowed only to a loopback host (in development); use https"
    if not development and _local_name(host):
        return f"url: {host} is a local or private address; webhooks go to public hosts"
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_name(host: str) -> bool:
    """A host that names this machine or a private network: a loopback, private, link-local or reserved
    address literal, or a name that only a local resolver answers."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        return forbidden_address(ipaddress.ip_address(name))
    except ValueError:
        return False


def forbidden_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a webhook may not be sent to this address outside development: anything not globally
    routable (loopback, private, link-local such as cloud metadata services, shared, reserved), and
    multicast. Checked on the URL when it is written and on the resolved addresses when sending."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


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


def backoff(failures: int) -> dt.timedelta:
    """The wait after ``failures`` failures in a row: 30 s, 1 min, 2 min, … at most 6 h."""
    return min(BASE_DELAY * (1 << min(max(failures - 1, 0), 20)), MAX_DELAY)


def next_attempt(
    attempts: int, now: dt.datetime, retry_after_delay: dt.timedelta | None
) -> dt.datetime | None:
    """When to try a delivery (or an e-mail) again after ``attempts`` failed attempts, the endpoint's
    ``Retry-After`` winning when longer; None once the attempts are used up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    delay = backoff(attempts)
    if retry_after_delay is not None:
        delay = max(delay, retry_after_delay)
    return now + delay


def endpoint_pause(failures: int, now: dt.datetime, retry_after_delay: dt.timedelta | None) -> dt.datetime:
    """Until when an endpoint that failed ``failures`` times in a row gets nothing at all: a failing
    endpoint is tried with one delivery at a time on the same schedule, not with everything queued for it."""
    delay = backoff(failures)
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


def _finalize(value: Any) -> Any:
    return "" if value is None else value  # an absent value (a shipment without origin) prints nothing


class _Sandbox(SandboxedEnvironment):
    """The jinja2 sandbox, and no arithmetic that builds huge values (``"x" * 10**9``)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and right > 64:
            raise SecurityError("exponents above 64 are not allowed")
        if operator == "*" and any(isinstance(v, str | list | tuple) for v in (left, right)):
            count = right if isinstance(right, int) else left
            if isinstance(count, int) and count > 1000:
                raise SecurityError("repeating a value more than 1000 times is not allowed")
        return super().call_binop(context, operator, left, right)


# when sending, a missing value prints nothing rather than failing (templates were checked when written)
_ENV = _Sandbox(
    autoescape=False, keep_trailing_newline=True, undefined=ChainableUndefined, finalize=_finalize
)
_HTML_ENV = _Sandbox(autoescape=True, undefined=ChainableUndefined, finalize=_finalize)
# the write-time trial render: any name or attribute the sample context lacks is an error
_STRICT_ENV = _Sandbox(autoescape=False, undefined=StrictUndefined, finalize=_finalize)
_STRICT_HTML_ENV = _Sandbox(autoescape=True, undefined=StrictUndefined, finalize=_finalize)

# mail without an html part of its own is sent with this one too: the text in the tenant's colours
LAYOUT = """<!doctype html>
<html><body style="margin:0;padding:0;font-family:Arial,Helvetica,sans-serif;color:#1f2328">
<div style="background:{{ brand.colour }};color:#ffffff;padding:14px 20px;font-size:18px;font-weight:bold">\
{{ brand.name }}</div>
<div style="padding:20px;white-space:pre-wrap;line-height:1.5">{{ text|urlize }}</div>
</body></html>
"""


class TemplateError(ValueError):
    """A template refused at write time; the message names the part and the field."""


def check_template(key: TemplateKey, template: Template) -> None:
    """Parse each part and check every name and attribute it uses against the key's documented context,
    then render it once with a sample of that context, where anything else is an error (a field reached
    through ``{% set %}`` or a subscript, a method the sandbox refuses)."""
    allowed = CONTEXT[key]
    for part, source, env, strict in (
        ("subject", template.subject, _ENV, _STRICT_ENV),
        ("text", template.text, _ENV, _STRICT_ENV),
        ("html", template.html, _HTML_ENV, _STRICT_HTML_ENV),
    ):
        if source is None:
            continue
        if len(source) > 50_000:
            raise TemplateError(f"{part}: at most 50000 characters")
        try:
            tree = env.parse(source)
        except TemplateSyntaxError as error:
            raise TemplateError(f"{part}: line {error.lineno}: {error.message}") from None
        _check_names(key, part, tree, allowed)
        try:
            strict.from_string(source).render(sample_context(key))
        except UndefinedError as error:
            raise TemplateError(f"{part}: {error.message} (fields: {', '.join(fields_of(key))})") from None
        except SecurityError as error:
            raise TemplateError(f"{part}: not allowed in a template: {error}") from None
        except Exception as error:  # any other failure of the trial render (a bad filter argument, ...)
            raise TemplateError(f"{part}: {type(error).__name__}: {error}") from None


def _check_names(
    key: TemplateKey, part: str, tree: nodes.Template, allowed: Mapping[str, tuple[str, ...]]
) -> None:
    loops = {n.name for f in tree.find_all(nodes.For) for n in _names(f.target)}
    assigned = {n.name for a in tree.find_all(nodes.Assign) for n in _names(a.target)}
    for name in tree.find_all(nodes.Name):
        if name.ctx != "load" or name.name in allowed or name.name in loops or name.name in assigned:
            continue
        if name.name == "loop" and loops:
            continue
        raise TemplateError(
            f"{part}: {name.name!r} is not a field of {key.value} templates "
            f"(fields: {', '.join(sorted(allowed))})"
        )
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attribute: str | None = None
        if isinstance(node, nodes.Getattr):
            attribute = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            attribute = node.arg.value if isinstance(node.arg.value, str) else None
        target = getattr(node, "node", None)
        if attribute is None or not isinstance(target, nodes.Name):
            continue  # an attribute of a value (``exception.type|lower``): the trial render checks it
        owner = target.name
        if owner in allowed:
            fields = allowed[owner]
        elif owner == "loop":
            fields = _LOOP
        elif owner in loops:
            fields = DIGEST_ITEM  # the only list a template gets is the digest's items
        else:
            continue  # a name set in the template: the trial render checks what it holds
        if attribute not in fields:
            raise TemplateError(f"{part}: {owner}.{attribute} is not a field of {key.value} templates")


def _names(target: nodes.Node) -> list[nodes.Name]:
    """The names a ``for`` or ``set`` target binds (``x``, or ``a, b``)."""
    return [target] if isinstance(target, nodes.Name) else list(target.find_all(nodes.Name))


# what ``loop`` offers inside a for loop
_LOOP = (
    "index",
    "index0",
    "revindex",
    "revindex0",
    "first",
    "last",
    "length",
    "cycle",
    "previtem",
    "nextitem",
    "depth",
    "depth0",
    "changed",
)


def fields_of(key: TemplateKey) -> list[str]:
    """The fields a template of ``key`` may use, as written in it (``exception.explanation``, ``link``)."""
    return sorted(
        f"{name}.{attribute}" if attribute else name
        for name, attributes in CONTEXT[key].items()
        for attribute in (attributes or ("",))
    )


def sample_context(key: TemplateKey) -> dict[str, Any]:
    """A context with every documented field of ``key`` and nothing else (for the trial render)."""
    context: dict[str, Any] = {}
    for name, attributes in CONTEXT[key].items():
        if name == "items":
            context[name] = [{field: "sample" for field in DIGEST_ITEM}]
        elif name in ("count", "step"):
            context[name] = 1
        elif attributes:
            context[name] = {attribute: "sample" for attribute in attributes}
        else:
            context[name] = "sample"
    return context


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str | None


def render(template: Template, context: Mapping[str, Any]) -> RenderedMail:
    """The e-mail: subject on one line, the text, and the html (the template's, else the text in the
    branded layout); html is escaped, every part runs in the sandbox."""
    subject = _ENV.from_string(template.subject).render(context).replace("\n", " ").strip()[:300]
    text = _ENV.from_string(template.text).render(context)
    if template.html:
        html = _HTML_ENV.from_string(template.html).render(context)
    else:
        html = _HTML_ENV.from_string(LAYOUT).render(brand=context.get("brand") or {}, text=text.strip())
    return RenderedMail(subject, text, html)


def digest_items(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: row[k] for k in DIGEST_ITEM} for row in rows]


def unique_ids(values: Sequence[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))
