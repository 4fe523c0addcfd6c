"""Our signatures, checked with an independent implementation (the standardwebhooks package)."""
import json

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobsvc import signing


def headers(secrets, msg_id="msg_1", timestamp=None, body="{}"):
    import time

    ts = timestamp or int(time.time())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signing.sign(secrets, msg_id, ts, body)}


def test_signature_verifies_with_standardwebhooks():
    secret = signing.generate_secret()
    body = json.dumps({"type": "job.completed", "job_id": "job-1"})
    assert Webhook(secret).verify(body, headers([secret], body=body)) == json.loads(body)


def test_tampered_body_or_other_secret_fails():
    secret = signing.generate_secret()
    h = headers([secret], body='{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify('{"a":2}', h)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.generate_secret()).verify('{"a":1}', h)


def test_both_secrets_sign_during_a_rotation():
    old, new = signing.generate_secret(), signing.generate_secret()
    body = '{"type":"job.failed"}'
    h = headers([new, old], body=body)
    assert len(h["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(body, h)
    Webhook(old).verify(body, h)


def test_secret_format():
    secret = signing.generate_secret()
    assert secret.startswith("whsec_") and len(secret) > 30
