"""The one module that talks to SQS (webhook retries and the dead-letter queue)."""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from .config import settings


@lru_cache(maxsize=1)
def _client() -> Any:
    import botocore.session  # botocore is loaded already (storage); boto3 is not needed

    cfg = settings()
    return botocore.session.get_session().create_client("sqs", region_name=cfg.region)


def botocore_client() -> Any:
    return _client()


def reset_client() -> None:
    """Forget the client (a restored SnapStart environment)."""
    _client.cache_clear()


def encode(message: dict) -> str:
    """A message's body, as every sender of webhook tasks writes it."""
    return json.dumps(message, separators=(",", ":"))


def send(queue_url: str, message: dict, delay_seconds: int = 0) -> None:
    _client().send_message(
        QueueUrl=queue_url, MessageBody=encode(message),
        DelaySeconds=max(0, min(900, int(delay_seconds))),
    )
