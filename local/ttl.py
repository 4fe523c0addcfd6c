"""The table's TTL, locally: moto keeps items past their ``ttl``; DynamoDB deletes them (within
a day or two of it, by its documentation) and each delete is a REMOVE on the stream, which
the projector function handles like any delete. This thread deletes expired items every
few seconds (LOCAL_TTL_SECONDS), each with a condition that re-checks the time, as
DynamoDB's own deletes do. With LOCAL_RETENTION_SECONDS, the retention period itself is
seconds instead of days, so the whole path can be seen in a test."""
from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Any, Iterator


class TtlReaper(threading.Thread):
    def __init__(self, emulator: Any, tables: dict[str, str], period: float) -> None:
        super().__init__(name="ttl", daemon=True)
        self.emulator = emulator
        self.tables = tables  # table name -> its TTL attribute
        self.period = period
        self.stopping = threading.Event()
        self.deleted = 0

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        client = self.emulator.client("dynamodb")
        while not self.stopping.wait(self.period):
            try:
                for table, attribute in self.tables.items():
                    self.deleted += self.sweep(client, table, attribute)
            except Exception:  # keep going: the emulator may be stopping
                traceback.print_exc(file=sys.stderr)

    def sweep(self, client: Any, table: str, attribute: str) -> int:
        epoch = int(time.time())
        deleted = 0
        for key in self.expired(client, table, attribute, epoch):
            try:
                client.delete_item(TableName=table, Key=key, ConditionExpression="#ttl < :now", **_before(attribute, epoch))
                deleted += 1
            except client.exceptions.ConditionalCheckFailedException:
                pass  # renewed meanwhile
        return deleted

    def expired(self, client: Any, table: str, attribute: str, epoch: int) -> Iterator[dict]:
        """The keys of the expired items: from the embedded emulator's memory, or by a Scan."""
        keys = self.emulator.expired_keys(table, attribute, epoch)
        if keys is not None:
            yield from keys
            return
        start: dict | None = None
        while True:
            kwargs = {"ExclusiveStartKey": start} if start else {}
            page = client.scan(TableName=table, FilterExpression="#ttl < :now", ProjectionExpression="pk, sk",
                               **_before(attribute, epoch), **kwargs)
            yield from page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return


def _before(attribute: str, epoch: int) -> dict:
    """The names and values of ``#ttl < :now``."""
    return {"ExpressionAttributeNames": {"#ttl": attribute}, "ExpressionAttributeValues": {":now": {"N": str(epoch)}}}
