"""Operator command: dead-lettered webhooks back to the retry queue, or given-up stream batches replayed.

    python -m jobsvc.redrive --dlq <WebhookDeadLetterQueueUrl> --queue <WebhookQueueUrl> [--max N] [--region R]
    python -m jobsvc.redrive --stream-failures --failures <StreamFailureQueueUrl> --queue <WebhookQueueUrl> --table <TableName>

(or WEBHOOK_DLQ_URL / WEBHOOK_QUEUE_URL / STREAM_FAILURE_QUEUE_URL / TABLE_NAME in the
environment; the stack outputs them all). Uses the usual AWS credentials chain
(AWS_ENDPOINT_URL for the local stack's emulator).

Dead letters: each message is sent to the retry queue as it is, then deleted from the
dead-letter queue; the callbacks function attempts each again: a dead letter starts a new
round of retries, and one that fails again comes back to the dead-letter queue. A message is
copied before it is deleted, so a crash half way can send one twice, never lose one (a
webhook is attempted at most once at a time and delivered at most once: the delivery's state
decides). SQS's own "Start DLQ redrive" in the console does the same thing.

Stream failures: when the callbacks or the projector function keeps failing on a stream
batch (the function itself, not a receiver: a receiver's failures go through the retry
queue), Lambda skips the batch after its retries and sends the stream-failure queue a record
naming the shard and the sequence numbers, not the records. This reads those records back
from the stream (it keeps them 24 hours) and does what the function would have done: a
terminal transition's webhook goes to the retry queue (its first attempt, or a duplicate
that the delivery's state turns away if it was sent after all), and the projector's
clean-up after deleted jobs runs again. The stats counters of a given-up projector batch are
not recovered: each counter counts a stream record once, by sequence number, and has counted
later records since, so the replay adds nothing to them (they undercount, never double). The
message is deleted only after its whole batch is replayed; one whose records the stream no
longer has (given up after 24 hours, or for their age) is reported and left in the queue.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any


def _sent_before(sqs: Any, url: str, started_ms: int, count: int, visibility: int, **extra: Any) -> list[dict[str, Any]]:
    """Up to ``count`` messages of ``url`` sent before ``started_ms`` (epoch ms): a run handles
    only what was there when it started, so that one whose messages come back always ends (one
    received and left out stays invisible for ``visibility`` seconds, until the next run)."""
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=count, WaitTimeSeconds=1,
                                   VisibilityTimeout=visibility, AttributeNames=["SentTimestamp"], **extra).get("Messages", [])
    return [m for m in received if int(m.get("Attributes", {}).get("SentTimestamp", 0)) <= started_ms]


def redrive(sqs: Any, dlq_url: str, queue_url: str, limit: int | None = None) -> int:
    """Move up to ``limit`` messages (all when None) from ``dlq_url`` to ``queue_url``.

    Only the messages that were in the dead-letter queue when the run started: one that came
    back meanwhile (its redelivery failed again, or its URL is refused for good) is left
    there, so a run always ends."""
    started_ms = int(time.time() * 1000)
    moved = 0
    while limit is None or moved < limit:
        batch = min(10, limit - moved) if limit is not None else 10
        messages = _sent_before(sqs, dlq_url, started_ms, batch, 60, MessageAttributeNames=["All"])
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


#: how many empty pages in a row end a read of a stream range (an open shard can answer empty)
EMPTY_PAGES = 5
#: the logical ids of the functions whose batches can be replayed (in their generated names)
CALLBACKS, PROJECTOR = "CallbacksFunction", "ProjectorFunction"


class Unreplayable(Exception):
    pass


def stream_records(streams: Any, batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of a given-up batch (``DDBStreamBatchInfo``), read back from the stream.
    Raises Unreplayable if the stream no longer has them all (it keeps records 24 hours)."""
    start, end = int(batch["startSequenceNumber"]), int(batch["endSequenceNumber"])
    try:
        iterator = streams.get_shard_iterator(
            StreamArn=batch["streamArn"], ShardId=batch["shardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=batch["startSequenceNumber"],
        ).get("ShardIterator")
    except Exception as exc:  # TrimmedDataAccessException, ResourceNotFoundException, ...
        raise Unreplayable(f"the stream no longer has the batch: {exc}") from exc
    records: list[dict[str, Any]] = []
    empty = 0
    while iterator and empty < EMPTY_PAGES:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        for record in page.get("Records", []):
            sequence = int(record["dynamodb"]["SequenceNumber"])
            if sequence > end:
                raise Unreplayable(f"the stream has no record {end} (the batch's last)")
            if sequence >= start:
                records.append(record)
            if sequence == end:
                return records
        empty = 0 if page.get("Records") else empty + 1
        if empty:
            time.sleep(0.2)  # an open shard may answer empty before it answers again
        iterator = page.get("NextShardIterator")
    raise Unreplayable(f"read {len(records)} records, not up to {end} (the batch's last)")


def replay_batch(sqs: Any, queue_url: str, function_arn: str, records: list[dict[str, Any]]) -> int:
    """Do for ``records`` what the function that gave them up would have done; returns how
    many webhooks were queued (callbacks) or records projected (projector)."""
    from . import queues, webhooks

    if CALLBACKS in function_arn:
        queued = 0
        for record in records:
            data = record.get("dynamodb", {})
            task = webhooks.task_from_stream(data.get("OldImage"), data.get("NewImage"))
            if task is not None:
                sqs.send_message(QueueUrl=queue_url, MessageBody=queues.encode(task.message()))
                queued += 1
        return queued
    if PROJECTOR in function_arn:
        from .projection import project

        project(records)
        return len(records)
    raise Unreplayable(f"no replay for the function {function_arn}")


def replay_stream_failures(sqs: Any, streams: Any, failures_url: str, queue_url: str) -> dict[str, Any]:
    """Replay every batch named in the stream-failure queue when the run started. A message is
    deleted once its batch is replayed (a crash before that replays it again: harmless); one
    that cannot be replayed is reported in ``unreplayable`` and left in the queue (invisible
    for the rest of the run), so that the others go on."""
    started_ms = int(time.time() * 1000)
    done: dict[str, Any] = {"batches": 0, "records": 0, "replayed": 0, "unreplayable": []}
    while True:
        messages = _sent_before(sqs, failures_url, started_ms, 10, 300)
        if not messages:
            return done
        for message in messages:
            try:
                info = json.loads(message["Body"])
                records = stream_records(streams, info["DDBStreamBatchInfo"])
                replayed = replay_batch(sqs, queue_url, info["requestContext"]["functionArn"], records)
            except (Unreplayable, ValueError, KeyError, TypeError) as exc:
                done["unreplayable"].append({"message_id": message["MessageId"], "reason": str(exc)})
                continue
            done["replayed"] += replayed
            done["records"] += len(records)
            done["batches"] += 1
            sqs.delete_message(QueueUrl=failures_url, ReceiptHandle=message["ReceiptHandle"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobsvc.redrive", description=__doc__.split("\n")[0])
    parser.add_argument("--dlq", default=os.environ.get("WEBHOOK_DLQ_URL"), help="the dead-letter queue's URL")
    parser.add_argument("--queue", default=os.environ.get("WEBHOOK_QUEUE_URL"), help="the retry queue's URL")
    parser.add_argument("--max", type=int, default=None, help="move at most this many (default: all)")
    parser.add_argument("--stream-failures", action="store_true",
                        help="replay the stream batches named in the stream-failure queue instead of moving dead letters")
    parser.add_argument("--failures", default=os.environ.get("STREAM_FAILURE_QUEUE_URL"),
                        help="the stream-failure queue's URL (for --stream-failures)")
    parser.add_argument("--table", default=os.environ.get("TABLE_NAME"), help="the table's name (for --stream-failures)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    args = parser.parse_args(argv)
    import botocore.session

    def client(service: str) -> Any:
        return botocore.session.get_session().create_client(
            service, region_name=args.region or "us-east-1", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        )

    if args.stream_failures:
        if not args.failures or not args.queue or not args.table:
            parser.error("--stream-failures needs --failures, --queue and --table (or STREAM_FAILURE_QUEUE_URL, "
                         "WEBHOOK_QUEUE_URL and TABLE_NAME)")
        os.environ["TABLE_NAME"] = args.table  # the projector's replay writes to the table
        os.environ.setdefault("AWS_REGION", args.region or "us-east-1")
        done = replay_stream_failures(client("sqs"), client("dynamodbstreams"), args.failures, args.queue)
        print(f"replayed {done['batches']} stream batches ({done['records']} records, {done['replayed']} replayed)")
        for failure in done["unreplayable"]:
            print(f"could not replay message {failure['message_id']}: {failure['reason']} (left in the queue)")
        return 1 if done["unreplayable"] else 0
    if not args.dlq or not args.queue:
        parser.error("--dlq and --queue (or WEBHOOK_DLQ_URL and WEBHOOK_QUEUE_URL) are required")
    moved = redrive(client("sqs"), args.dlq, args.queue, args.max)
    print(f"moved {moved} message{'s' if moved != 1 else ''} back to the retry queue")
    return 0


if __name__ == "__main__":
    sys.exit(main())
