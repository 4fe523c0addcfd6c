"""Operator command: send every dead-lettered webhook back to the retry queue.

    python -m jobsvc.redrive --dlq <WebhookDeadLetterQueueUrl> --queue <WebhookQueueUrl> [--max N] [--region R]

(or WEBHOOK_DLQ_URL / WEBHOOK_QUEUE_URL in the environment; the stack outputs both URLs).
Uses the usual AWS credentials chain (AWS_ENDPOINT_URL for the local stack's emulator).

Each message is sent to the retry queue as it is, then deleted from the dead-letter queue;
the callbacks function attempts each again: a dead letter starts a new round of retries,
and one that fails again comes back to the dead-letter queue. A message is copied before it
is deleted, so a crash half way can send one twice, never lose one (a webhook is attempted
at most once at a time and delivered at most once: the delivery's state decides). SQS's own
"Start DLQ redrive" in the console does the same thing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any


def redrive(sqs: Any, dlq_url: str, queue_url: str, limit: int | None = None) -> int:
    """Move up to ``limit`` messages (all when None) from ``dlq_url`` to ``queue_url``.

    Only the messages that were in the dead-letter queue when the run started: one that came
    back meanwhile (its redelivery failed again, or its URL is refused for good) is left
    there, so a run always ends."""
    started_ms = int(time.time() * 1000)
    moved = 0
    while limit is None or moved < limit:
        batch = min(10, limit - moved) if limit is not None else 10
        received = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=batch, WaitTimeSeconds=1,
                                       VisibilityTimeout=60, MessageAttributeNames=["All"],
                                       AttributeNames=["SentTimestamp"]).get("Messages", [])
        messages = [m for m in received if int(m.get("Attributes", {}).get("SentTimestamp", 0)) < started_ms]
        # (one that came back stays invisible for a minute, then waits for the next run)
        if not messages:
            return moved
        entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)]
        sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        done = {entry["Id"] for entry in sent.get("Successful", [])}
        failed = sent.get("Failed", [])
        deletions = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages) if str(i) in done]
        if deletions:
            sqs.delete_message_batch(QueueUrl=dlq_url, Entries=deletions)
        moved += len(deletions)
        if failed:
            raise RuntimeError(f"{len(failed)} messages could not be sent back: {failed[0].get('Message')}")
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobsvc.redrive", description=__doc__.split("\n")[0])
    parser.add_argument("--dlq", default=os.environ.get("WEBHOOK_DLQ_URL"), help="the dead-letter queue's URL")
    parser.add_argument("--queue", default=os.environ.get("WEBHOOK_QUEUE_URL"), help="the retry queue's URL")
    parser.add_argument("--max", type=int, default=None, help="move at most this many (default: all)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    args = parser.parse_args(argv)
    if not args.dlq or not args.queue:
        parser.error("--dlq and --queue (or WEBHOOK_DLQ_URL and WEBHOOK_QUEUE_URL) are required")
    import botocore.session

    sqs = botocore.session.get_session().create_client(
        "sqs", region_name=args.region or "us-east-1", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
    )
    moved = redrive(sqs, args.dlq, args.queue, args.max)
    print(f"moved {moved} message{'s' if moved != 1 else ''} back to the retry queue")
    return 0


if __name__ == "__main__":
    sys.exit(main())
