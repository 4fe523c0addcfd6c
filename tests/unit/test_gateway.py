"""How the local API Gateway puts a request body into the payload 2.0 event (local/gateway.py)."""
from __future__ import annotations

import base64

import pytest

from local.gateway import body_for_event

BODY = b'{"a": "\xc3\xa9"}'
AS_TEXT = (BODY.decode(), False)
AS_BASE64 = (base64.b64encode(BODY).decode(), True)


@pytest.mark.parametrize("content_type, expected", [
    ("application/json", AS_TEXT),
    ("application/json; charset=utf-8", AS_TEXT),
    ("APPLICATION/JSON; Charset=UTF-8", AS_TEXT),
    ("text/plain", AS_TEXT),
    ("text/csv", AS_TEXT),
    ("text/html; charset=utf-8", AS_TEXT),
    ("application/xml", AS_TEXT),
    ("application/javascript", AS_TEXT),
    (None, AS_BASE64),  # no Content-Type
    ("", AS_BASE64),
    ("application/x-www-form-urlencoded", AS_BASE64),  # what curl -d sends
    ("multipart/form-data; boundary=x", AS_BASE64),
    ("application/octet-stream", AS_BASE64),
    ("application/vnd.api+json", AS_BASE64),  # +json suffixes are not text to API Gateway
    ("application/problem+json", AS_BASE64),
    ("text/plain; charset=iso-8859-1", AS_BASE64),
    ("image/png", AS_BASE64),
])
def test_only_text_content_types_arrive_as_text(content_type, expected):
    assert body_for_event(BODY, content_type) == expected


def test_a_text_body_that_is_not_utf8_arrives_base64_encoded():
    raw = b'{"a": "\xff"}'
    assert body_for_event(raw, "application/json") == (base64.b64encode(raw).decode(), True)


def test_no_body_is_null_and_not_encoded():
    assert body_for_event(b"", "application/octet-stream") == (None, False)


def test_base64_makes_a_body_a_third_larger():
    body = b"x" * 3_000_000
    text, encoded = body_for_event(body, None)
    assert encoded and len(text) == 4_000_000
