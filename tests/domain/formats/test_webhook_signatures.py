from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata

import pytest
from starlette.datastructures import Headers

from domain.tracking.formats.webhook_signatures import (
    SignatureError,
    SignatureKind,
    WebhookSignature,
    sign,
    verify,
)

BODY = b'{"event":"tracking_update","msg":{"tracking_number":"3SKAAG5995399"}}'
SECRET = "aftership-webhook-secret"
# "é" written composed (U+00E9): EasyPost keys the HMAC with the NFKD form (e + U+0301)
EASYPOST_SECRET = "s\u00e9cret-easypost"


def aftership_signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def easypost_signature(secret: str, body: bytes) -> str:
    key = unicodedata.normalize("NFKD", secret).encode("utf-8")
    return "hmac-sha256-hex=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def failure(
    kind: str, secret: str | list[str], headers: dict[str, str], body: bytes = BODY
) -> tuple[str, str]:
    with pytest.raises(SignatureError) as error:
        verify(kind, secret, headers, body)
    return error.value.reason, str(error.value)


def test_a_valid_aftership_signature_passes() -> None:
    signature = aftership_signature(SECRET, BODY)
    verify("aftership", SECRET, {"aftership-hmac-sha256": signature}, BODY)
    verify(SignatureKind.AFTERSHIP, SECRET, {"Aftership-Hmac-Sha256": signature}, BODY)
    verify("aftership", SECRET, Headers({"aftership-hmac-sha256": signature}), BODY)


def test_a_valid_easypost_signature_passes_with_the_normalised_secret() -> None:
    signature = easypost_signature(EASYPOST_SECRET, BODY)
    verify("easypost", EASYPOST_SECRET, {"X-Hmac-Signature": signature}, BODY)
    upper = "hmac-sha256-hex=" + signature.removeprefix("hmac-sha256-hex=").upper()
    verify("easypost", EASYPOST_SECRET, {"x-hmac-signature": upper}, BODY)


def test_easypost_signatures_made_with_the_unnormalised_secret_do_not_match() -> None:
    raw_key_signature = (
        "hmac-sha256-hex=" + hmac.new(EASYPOST_SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    )
    assert failure("easypost", EASYPOST_SECRET, {"X-Hmac-Signature": raw_key_signature}) == (
        "mismatch",
        "the x-hmac-signature signature does not match the body",
    )


def test_a_changed_body_does_not_match() -> None:
    headers = {"aftership-hmac-sha256": aftership_signature(SECRET, BODY)}
    assert failure("aftership", SECRET, headers, BODY.replace(b"3SKAAG", b"3SKAAH")) == (
        "mismatch",
        "the aftership-hmac-sha256 signature does not match the body",
    )
    assert failure("aftership", "another-secret", headers) == (
        "mismatch",
        "the aftership-hmac-sha256 signature does not match the body",
    )


def test_an_unsigned_request_is_refused() -> None:
    assert failure("aftership", SECRET, {"content-type": "application/json"}) == (
        "missing_header",
        "no aftership-hmac-sha256 header: the request is not signed",
    )
    assert failure("easypost", SECRET, {"aftership-hmac-sha256": aftership_signature(SECRET, BODY)}) == (
        "missing_header",
        "no x-hmac-signature header: the request is not signed",
    )


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("aftership", "not base64!", "the aftership-hmac-sha256 header is not base64"),
        (
            "aftership",
            base64.b64encode(b"\x00" * 20).decode(),
            "the aftership-hmac-sha256 header holds 20 bytes, an HMAC-SHA256 has 32",
        ),
        ("aftership", "", "the aftership-hmac-sha256 header holds 0 bytes, an HMAC-SHA256 has 32"),
        (
            "easypost",
            hashlib.sha256(BODY).hexdigest(),
            "the x-hmac-signature header does not start with 'hmac-sha256-hex='",
        ),
        ("easypost", "hmac-sha256-hex=xyz", "the x-hmac-signature header does not end in a hex digest"),
        (
            "easypost",
            "hmac-sha256-hex=" + "ab" * 16,
            "the x-hmac-signature header holds 16 bytes, an HMAC-SHA256 has 32",
        ),
    ],
)
def test_a_malformed_signature_is_refused(kind: str, value: str, message: str) -> None:
    header = "aftership-hmac-sha256" if kind == "aftership" else "X-Hmac-Signature"
    assert failure(kind, SECRET, {header: value}) == ("malformed", message)


def test_a_header_given_twice_is_refused() -> None:
    signature = aftership_signature(SECRET, BODY)
    headers = {"aftership-hmac-sha256": signature, "AfterShip-HMAC-SHA256": signature}
    assert failure("aftership", SECRET, headers) == (
        "malformed",
        "the aftership-hmac-sha256 header is given 2 times",
    )


def test_an_endpoint_without_a_secret_accepts_nothing() -> None:
    headers = {"aftership-hmac-sha256": aftership_signature("", BODY)}
    assert failure("aftership", "", headers) == (
        "no_secret",
        "no aftership webhook secret is configured for this endpoint",
    )
    assert failure("aftership", [], headers)[0] == "no_secret"


def test_during_rotation_either_secret_is_accepted() -> None:
    endpoint = WebhookSignature(SignatureKind.EASYPOST, ("old-secret", "new-secret"))
    for secret in ("old-secret", "new-secret"):
        endpoint.verify({"X-Hmac-Signature": easypost_signature(secret, BODY)}, BODY)
    with pytest.raises(SignatureError) as error:
        endpoint.verify({"X-Hmac-Signature": easypost_signature("retired-secret", BODY)}, BODY)
    assert error.value.reason == "mismatch"


def test_sign_produces_what_the_vendors_send() -> None:
    assert sign("aftership", SECRET, BODY) == ("aftership-hmac-sha256", aftership_signature(SECRET, BODY))
    assert sign("easypost", EASYPOST_SECRET, BODY) == (
        "x-hmac-signature",
        easypost_signature(EASYPOST_SECRET, BODY),
    )


def test_an_unknown_kind_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="'shopify' is not a valid SignatureKind"):
        verify("shopify", SECRET, {}, BODY)
