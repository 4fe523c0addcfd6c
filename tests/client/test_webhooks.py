"""verify_webhook against deliveries signed by the independent standardwebhooks package."""
from __future__ import annotations

import base64
import json
import os
import time
from datetime import datetime, timezone

import pytest
from jobsvc_client import WebhookVerificationError, sign_webhook, verify_webhook
from standardwebhooks.webhooks import Webhook

OLD = "whsec_" + base64.b64encode(os.urandom(32)).decode()
NEW = "whsec_" + base64.b64encode(os.urandom(32)).decode()
EVENT = {"type": "job.completed", "timestamp": "2026-11-28T15:04:05.123456Z", "job_id": "job-1", "status": "completed",
         "completed_at": "2026-11-28T15:04:05.123456Z", "metadata": {"é": "ünïcode"}, "stop_reason": None, "job_type": "job"}
BODY = json.dumps(EVENT, ensure_ascii=False)


def delivery(secrets=(NEW,), at: float | None = None, msg_id: str = "msg_2a1b", body: str = BODY) -> dict[str, str]:
    """Headers of a delivery signed by standardwebhooks with each of ``secrets``."""
    at = int(time.time() if at is None else at)
    stamp = datetime.fromtimestamp(at, tz=timezone.utc)
    signatures = " ".join(Webhook(s).sign(msg_id, stamp, body) for s in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": signatures}


def test_a_genuine_delivery_verifies():
    assert verify_webhook(NEW, BODY.encode(), delivery()) == EVENT
    assert verify_webhook(NEW, BODY, delivery()) == EVENT  # the body as a string too


def test_header_names_are_case_insensitive():
    headers = {k.title(): v for k, v in delivery().items()}
    assert "Webhook-Signature" in headers
    assert verify_webhook(NEW, BODY.encode(), headers) == EVENT
    assert verify_webhook(NEW, BODY.encode(), list(delivery().items())) == EVENT  # pairs


def test_during_a_rotation_either_secret_verifies():
    headers = delivery(secrets=(OLD, NEW))
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify_webhook(OLD, BODY.encode(), headers) == EVENT
    assert verify_webhook(NEW, BODY.encode(), headers) == EVENT
    assert verify_webhook([OLD, NEW], BODY.encode(), delivery(secrets=(NEW,))) == EVENT  # a receiver with both


def test_a_wrong_secret_is_refused():
    with pytest.raises(WebhookVerificationError, match="no signature"):
        verify_webhook(OLD, BODY.encode(), delivery(secrets=(NEW,)))


@pytest.mark.parametrize("change", ["body", "id", "timestamp"])
def test_anything_tampered_is_refused(change):
    headers = delivery()
    body = BODY.encode()
    if change == "body":
        body = body.replace(b"completed", b"failed", 1)
    elif change == "id":
        headers["webhook-id"] = "msg_other"
    else:
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(NEW, body, headers)


@pytest.mark.parametrize("offset, ok", [(-301, False), (-299, True), (299, True), (301, False)])
def test_timestamps_more_than_five_minutes_away_are_refused(offset, ok):
    now = 1_900_000_000
    headers = delivery(at=now + offset)
    if ok:
        assert verify_webhook(NEW, BODY.encode(), headers, now=now) == EVENT
    else:
        with pytest.raises(WebhookVerificationError, match="webhook-timestamp"):
            verify_webhook(NEW, BODY.encode(), headers, now=now)


def test_the_tolerance_can_be_changed():
    now = 1_900_000_000
    headers = delivery(at=now - 100)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(NEW, BODY.encode(), headers, now=now, tolerance=60)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_refused(missing):
    headers = delivery()
    del headers[missing]
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook(NEW, BODY.encode(), headers)


def test_unknown_versions_and_garbage_signatures_are_skipped():
    headers = delivery()
    headers["webhook-signature"] = "v2,abc v1,!!notbase64!! v1a,xyz " + headers["webhook-signature"]
    assert verify_webhook(NEW, BODY.encode(), headers) == EVENT
    headers["webhook-signature"] = "v2," + headers["webhook-signature"].split("v1,")[-1]
    with pytest.raises(WebhookVerificationError):
        verify_webhook(NEW, BODY.encode(), headers)


def test_a_body_that_is_not_a_json_object_is_refused():
    for body in ("[1, 2]", "not json"):
        with pytest.raises(WebhookVerificationError):
            verify_webhook(NEW, body.encode(), delivery(body=body))


def test_secret_forms():
    raw = NEW[len("whsec_"):]
    assert verify_webhook(raw, BODY, delivery()) == EVENT  # without the prefix
    assert verify_webhook(NEW.rstrip("="), BODY, delivery()) == EVENT  # unpadded base64, as standardwebhooks takes
    for bad in ("", "whsec_", "whsec_***"):
        with pytest.raises(WebhookVerificationError):
            verify_webhook(bad, BODY, delivery())


def test_our_signer_agrees_with_standardwebhooks():
    at = int(time.time())
    signature = sign_webhook(NEW, "msg_1", at, BODY)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(at), "webhook-signature": signature}
    assert Webhook(NEW).verify(BODY, headers) == EVENT
