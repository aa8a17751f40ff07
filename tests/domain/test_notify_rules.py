"""Notifications' pure rules: signatures checked by an independent verifier, URL policy, retry schedule and
Retry-After, preferences and their defaults, what a shipper may see, template validation."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

import pytest

from domain.notify import rules
from domain.notify.rules import Delivery, Preference, Template, TemplateError, TemplateKey

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """An independent Standard Webhooks verifier, written from the specification for this test."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body.decode()}"
    expected = base64.b64encode(hmac.new(key, content.encode(), hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(signature, expected)
        for version, _, signature in (part.partition(",") for part in headers["webhook-signature"].split(" "))
    )


def test_signatures_verify_with_an_independent_implementation_and_fail_when_anything_changes() -> None:
    secret = rules.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    body = b'{"type":"exception.opened","data":{"id":"1"}}'
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1767225600"}
    headers["webhook-signature"] = rules.sign(secret, "msg_1", 1767225600, body)
    assert verify_standard_webhook(secret, headers, body)
    assert not verify_standard_webhook(secret, headers, body + b" ")
    assert not verify_standard_webhook(secret, {**headers, "webhook-timestamp": "1767225601"}, body)
    assert not verify_standard_webhook(rules.new_secret(), headers, body)


def test_the_signature_of_the_standard_webhooks_example() -> None:
    # the example in the Standard Webhooks specification (secret, id, timestamp, payload -> signature)
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert rules.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


@pytest.mark.parametrize(
    ("url", "development", "problem"),
    [
        ("https://hooks.example.com/milepost", False, None),
        ("http://hooks.example.com/milepost", False, "url: must be https"),
        ("http://127.0.0.1:9000/hook", True, None),
        ("http://localhost/hook", True, None),
        ("http://[::1]:8080/hook", True, None),
        (
            "http://10.0.0.5/hook",
            True,
            "url: http is allowed only to a loopback host (in development); use https",
        ),
        ("http://127.0.0.1:9000/hook", False, "url: must be https"),
        ("ftp://example.com/x", False, "url: 'ftp://example.com/x' is not an absolute http(s) URL"),
        ("/relative", False, "url: '/relative' is not an absolute http(s) URL"),
        (
            "https://user:pw@example.com/",
            False,
            "url: credentials in the URL are not allowed; the signature authenticates us",
        ),
        # private and local hosts outside development: no requests into the network Milepost runs in
        (
            "https://169.254.169.254/latest/meta-data",
            False,
            "url: 169.254.169.254 is a local or private address; webhooks go to public hosts",
        ),
        (
            "https://10.1.2.3/hook",
            False,
            "url: 10.1.2.3 is a local or private address; webhooks go to public hosts",
        ),
        (
            "https://[::ffff:127.0.0.1]/hook",
            False,
            "url: ::ffff:127.0.0.1 is a local or private address; webhooks go to public hosts",
        ),
        (
            "https://[fd00::1]/hook",
            False,
            "url: fd00::1 is a local or private address; webhooks go to public hosts",
        ),
        (
            "https://localhost/hook",
            False,
            "url: localhost is a local or private address; webhooks go to public hosts",
        ),
        (
            "https://db.internal/hook",
            False,
            "url: db.internal is a local or private address; webhooks go to public hosts",
        ),
        ("https://10.1.2.3/hook", True, None),
        ("https://8.8.8.8/hook", False, None),
        (
            "https://hooks.example.com:99999/x",
            False,
            "url: 'https://hooks.example.com:99999/x' has an invalid port",
        ),
    ],
)
def test_webhook_urls(url: str, development: bool, problem: str | None) -> None:
    assert rules.check_url(url, development=development) == problem


def test_retries_back_off_exponentially_honour_retry_after_and_stop() -> None:
    delays = [rules.next_attempt(n, T0, None) for n in range(1, 9)]
    assert [(d - T0).total_seconds() if d else None for d in delays] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        None,
    ]
    assert rules.next_attempt(1, T0, dt.timedelta(minutes=10)) == T0 + dt.timedelta(minutes=10)
    assert rules.next_attempt(3, T0, dt.timedelta(seconds=5)) == T0 + dt.timedelta(
        minutes=2
    )  # backoff longer
    assert rules.retry_after("120", T0) == dt.timedelta(seconds=120)
    assert rules.retry_after("Sun, 01 Nov 2026 08:05:00 GMT", T0) == dt.timedelta(minutes=5)
    assert rules.retry_after("Sun, 01 Nov 2026 07:00:00 GMT", T0) == dt.timedelta(0)
    assert rules.retry_after("99999999", T0) == rules.MAX_DELAY  # capped
    assert rules.retry_after("soon", T0) is None
    assert rules.retry_after(None, T0) is None
    # an endpoint pauses on the same schedule, without an end to its attempts
    assert rules.endpoint_pause(1, T0, None) == T0 + dt.timedelta(seconds=30)
    assert rules.endpoint_pause(9, T0, None) == T0 + dt.timedelta(seconds=30 * 256)
    assert rules.endpoint_pause(40, T0, None) == T0 + rules.MAX_DELAY
    assert rules.endpoint_pause(1, T0, dt.timedelta(minutes=5)) == T0 + dt.timedelta(minutes=5)


def test_preferences_and_their_defaults() -> None:
    staff = rules.channels(None, shipper=False, category="delay", severity="medium")
    assert staff == rules.Channels(in_app=True, email=False, digest=False)  # e-mail from high up by default
    assert rules.channels(None, shipper=False, category="delay", severity="high").email
    assert rules.channels(None, shipper=True, category="delay", severity="low") == rules.Channels(
        True, True, False
    )
    quiet = Preference(categories=frozenset({"customs"}), min_severity="high", delivery=Delivery.DIGEST)
    assert rules.channels(quiet, shipper=False, category="delay", severity="critical") == rules.Channels(
        False, False, False
    )
    assert rules.channels(quiet, shipper=False, category="customs", severity="medium") == rules.Channels(
        False, False, False
    )
    assert rules.channels(quiet, shipper=False, category="customs", severity="high") == rules.Channels(
        True, False, True
    )
    account = Preference(email=False)
    assert (
        rules.channels(None, shipper=True, category="delay", severity="high", account=account).email is False
    )
    own = Preference(email=True)
    assert rules.channels(own, shipper=True, category="delay", severity="high", account=account).email is True


def test_a_shipper_hears_only_customer_topics_and_comments_meant_for_it() -> None:
    assert rules.customer_may_hear("exception.opened", {})
    assert not rules.customer_may_hear("exception.assigned", {})
    assert not rules.customer_may_hear("exception.escalated", {})
    assert not rules.customer_may_hear("exception.acknowledged", {})  # not worth a mail; webhooks may take it
    assert not rules.customer_may_hear("exception.commented", {"customer_visible": False})
    assert not rules.customer_may_hear("exception.commented", {})
    assert rules.customer_may_hear("exception.commented", {"customer_visible": True})
    assert rules.EVENT_TYPES - {"exception.assigned", "exception.escalated"} == rules.ACCOUNT_EVENT_TYPES
    assert rules.customer_change(
        {
            "exception_id": "e",
            "status": "resolved",
            "outcome": "delivered_late",
            "root_cause": "carrier",
            "target_user_ids": ["u"],
            "reason": "not acknowledged",
        }
    ) == {"exception_id": "e", "status": "resolved", "outcome": "delivered_late"}


def test_templates_are_checked_against_their_fields_at_write_time() -> None:
    for key in TemplateKey:
        rules.check_template(key, rules.default_template(key))  # the built-in ones pass
    good = Template(
        "{{ brand.name }}: {{ exception.type }}",
        "Hi {{ recipient.name }}, {{ link }}",
        "<b>{{ shipment.reference }}</b>",
    )
    rules.check_template(TemplateKey.EXCEPTION_OPENED, good)
    with pytest.raises(
        TemplateError, match=r"^text: exception.internal_note is not a field of exception_opened templates$"
    ):
        rules.check_template(TemplateKey.EXCEPTION_OPENED, Template("x", "{{ exception.internal_note }}"))
    with pytest.raises(
        TemplateError, match=r"^subject: 'customer' is not a field of exception_opened templates"
    ):
        rules.check_template(TemplateKey.EXCEPTION_OPENED, Template("{{ customer }}", "x"))
    with pytest.raises(TemplateError, match=r"^html: line 1: "):
        rules.check_template(TemplateKey.EXCEPTION_OPENED, Template("x", "y", "{% if %}"))
    with pytest.raises(TemplateError, match="reason"):
        rules.check_template(TemplateKey.EXCEPTION_OPENED, Template("x", "{{ reason }}"))  # escalations only
    rules.check_template(
        TemplateKey.DIGEST, Template("x", "{% for item in items %}{{ item.title }}{% endfor %}")
    )
    with pytest.raises(TemplateError, match=r"item\.secret is not a field"):
        rules.check_template(
            TemplateKey.DIGEST, Template("x", "{% for item in items %}{{ item.secret }}{% endfor %}")
        )
    rules.check_template(
        TemplateKey.DIGEST,
        Template("x", "{% for item in items %}{{ loop.index }}. {{ item.title|upper }}{% endfor %}"),
    )
    # a field reached another way than by its name is refused all the same
    with pytest.raises(
        TemplateError, match=r"^text: exception.cost is not a field of exception_opened templates$"
    ):
        rules.check_template(TemplateKey.EXCEPTION_OPENED, Template("x", "{{ exception['cost'] }}"))
    with pytest.raises(TemplateError, match=r"^text: 'dict object' has no attribute 'cost' \(fields: brand"):
        rules.check_template(
            TemplateKey.EXCEPTION_OPENED, Template("x", "{% set e = exception %}{{ e.cost }}")
        )
    with pytest.raises(TemplateError, match=r"^html: link.__class__ is not a field"):
        rules.check_template(TemplateKey.EXCEPTION_OPENED, Template("x", "y", "{{ link.__class__ }}"))
    with pytest.raises(TemplateError, match=r"^subject: 'loop' is not a field"):
        rules.check_template(TemplateKey.EXCEPTION_OPENED, Template("{{ loop.index }}", "y"))
    assert "exception.explanation" in rules.fields_of(TemplateKey.EXCEPTION_OPENED)
    assert "reason" not in rules.fields_of(TemplateKey.EXCEPTION_OPENED)


def test_rendering_escapes_html_and_the_sandbox_refuses_python_internals() -> None:
    template = Template(
        "{{ exception.type }}", "{{ exception.explanation }}", "<p>{{ exception.explanation }}</p>"
    )
    context = {"exception": {"type": "X", "explanation": "<script>alert(1)</script>"}}
    mail = rules.render(template, context)
    assert mail.text == "<script>alert(1)</script>"
    assert mail.html == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    # the sandbox gives nothing of Python's internals (such a template is refused when written, too)
    assert rules.render(Template("x", "{{ link.__class__.__mro__ }}"), {"link": "a"}).text == ""
    assert rules.render(Template("x", '{{ "{0.__class__}".format(link) }}'), {"link": "a"}).text == ""
    with pytest.raises(TemplateError, match="not allowed in a template"):  # refused when written
        rules.check_template(TemplateKey.EXCEPTION_OPENED, Template("x", "{{ link * 10**9 }}"))


def test_mail_without_html_gets_the_text_in_the_tenants_branded_layout() -> None:
    template = Template("{{ exception.type }}", "Late: {{ exception.explanation }}\n{{ link }}\n")
    context = {
        "brand": {"name": "Northwind & Co", "colour": "#003366"},
        "exception": {"type": "X", "explanation": "<b>late</b>", "key": None},
        "link": "https://milepost.example/track/BK1",
    }
    mail = rules.render(template, context)
    assert mail.text == "Late: <b>late</b>\nhttps://milepost.example/track/BK1\n"
    assert mail.html is not None
    assert '<div style="background:#003366;color:#ffffff;' in mail.html
    assert "Northwind &amp; Co</div>" in mail.html
    assert "Late: &lt;b&gt;late&lt;/b&gt;" in mail.html
    assert '<a href="https://milepost.example/track/BK1"' in mail.html
    # an absent value prints nothing rather than "None"
    assert rules.render(Template("[{{ exception.key }}]", "x"), context).subject == "[]"
