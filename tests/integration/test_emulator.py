"""The embedded emulator where it must answer as DynamoDB and SQS do and moto alone does not:
transaction conflicts, eventually consistent reads, no stream record for a write that changes
nothing, injected faults. Spoken to with boto3 over HTTP, as the service's code speaks to it."""
from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Iterator

import pytest
from botocore.exceptions import ClientError

from local.emulation import Emulation
from local.emulator import Emulator
from local.faults import FaultInjector, FaultSpec

from .local_support import create_table, raw_client, wait_until


@pytest.fixture
def start_emulator() -> Iterator:
    started: list[Emulator] = []

    def start(behaviour: Emulation | None = None, faults: FaultInjector | None = None) -> Emulator:
        emulator = Emulator(behaviour=behaviour or Emulation(), faults=faults)
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


def key(sk: str) -> dict:
    return {"pk": {"S": "p"}, "sk": {"S": sk}}


def item(sk: str, **attrs: str) -> dict:
    return {**key(sk), **{k: {"S": v} for k, v in attrs.items()}}


# ---- transaction conflicts ---------------------------------------------------------------------


class Transaction(threading.Thread):
    """A TransactWriteItems sent in the background; ``applied()`` tells when DynamoDB has run it
    (its write is visible to a strongly consistent read) while its answer is still held back."""

    def __init__(self, client, table: str, sk: str) -> None:
        super().__init__(daemon=True)
        self.client, self.table, self.sk = client, table, sk
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.client.transact_write_items(TransactItems=[{"Put": {"TableName": self.table, "Item": item(self.sk, v="tx")}}])
        except Exception as exc:  # noqa: BLE001 - inspected by the test
            self.error = exc

    def applied(self) -> bool:
        got = self.client.get_item(TableName=self.table, Key=key(self.sk), ConsistentRead=True).get("Item")
        return bool(got) and got["v"]["S"] == "tx"


def hold_an_item(emulator: Emulator, sk: str = "x") -> tuple:
    client = raw_client("dynamodb", emulator.endpoint_url)
    table = create_table(client)
    tx = Transaction(client, table, sk)
    tx.start()
    assert wait_until(tx.applied, timeout=30, interval=0.01), "the transaction did not run"
    return client, table, tx


# a window far longer than the few requests a test sends while it is open
WINDOW = 5.0


def test_a_plain_write_to_an_item_a_transaction_is_using_fails_with_TransactionConflictException(start_emulator):
    behaviour = Emulation(transaction_seconds=WINDOW)
    client, table, tx = hold_an_item(start_emulator(behaviour))
    for write in (
        lambda: client.put_item(TableName=table, Item=item("x", v="plain")),
        lambda: client.update_item(TableName=table, Key=key("x"), UpdateExpression="SET v = :v",
                                   ExpressionAttributeValues={":v": {"S": "plain"}}),
        lambda: client.delete_item(TableName=table, Key=key("x")),
    ):
        with pytest.raises(ClientError) as raised:
            write()
        error = raised.value.response
        assert error["Error"] == {"Code": "TransactionConflictException", "Message": "Transaction is ongoing for the item"}
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert tx.is_alive(), "the transaction answered before the conflicts were seen"
    # an item the transaction does not use is free, and so is a read of the one it uses
    client.put_item(TableName=table, Item=item("y", v="plain"))
    assert client.get_item(TableName=table, Key=key("x"))["Item"]["v"] == {"S": "tx"}
    behaviour.in_use.release_all()  # the window ends with the checks, not after its 5 s
    tx.join()
    assert tx.error is None
    # once the transaction has answered, its items are free again: a client that waits for an
    # answer before its next write never sees a conflict
    client.put_item(TableName=table, Item=item("x", v="after"))


def test_botocore_does_not_retry_a_transaction_conflict(start_emulator):
    behaviour = Emulation(transaction_seconds=WINDOW)
    emulator = start_emulator(behaviour)
    _, table, tx = hold_an_item(emulator)
    retrying = raw_client("dynamodb", emulator.endpoint_url, retries=5)
    with pytest.raises(ClientError) as raised:
        retrying.put_item(TableName=table, Item=item("x", v="plain"))
    assert raised.value.response["Error"]["Code"] == "TransactionConflictException"
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    behaviour.in_use.release_all()
    tx.join()


def test_a_transaction_touching_an_item_in_use_is_cancelled_with_TransactionConflict(start_emulator):
    behaviour = Emulation(transaction_seconds=WINDOW)
    client, table, tx = hold_an_item(start_emulator(behaviour))
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": item("free", v="second")}},
            {"Update": {"TableName": table, "Key": key("x"), "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"S": "second"}}}},
        ])
    error = raised.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    assert error["CancellationReasons"] == [
        {"Code": "None"}, {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
    ]
    assert "Item" not in client.get_item(TableName=table, Key=key("free"), ConsistentRead=True), "a cancelled transaction wrote"
    with pytest.raises(ClientError) as raised:
        client.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": key("x")}}])
    assert raised.value.response["CancellationReasons"] == [
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
    ]
    behaviour.in_use.release_all()
    tx.join()
    assert tx.error is None


def test_with_the_window_off_nothing_conflicts(start_emulator):
    emulator = start_emulator(Emulation(transaction_seconds=0))
    client = raw_client("dynamodb", emulator.endpoint_url)
    table = create_table(client)
    errors: list[Exception] = []

    def write(n: int) -> None:
        try:
            for i in range(20):
                if i % 2:
                    client.put_item(TableName=table, Item=item("x", v=f"{n}-{i}"))
                else:
                    client.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": item("x", v=f"{n}-{i}")}}])
        except ClientError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ---- eventual consistency ----------------------------------------------------------------------


def test_eventually_consistent_reads_see_the_table_as_it_was_lag_ago(start_emulator):
    behaviour = Emulation(index_lag_seconds=0)
    emulator = start_emulator(behaviour)
    client = raw_client("dynamodb", emulator.endpoint_url)
    table = create_table(client, index=True)
    client.put_item(TableName=table, Item=item("a", g="G", v="old"))
    client.put_item(TableName=table, Item=item("b", g="G", v="old"))
    behaviour.index_lag_seconds = 600  # from now on, the writes below are "too recent" to be seen

    client.put_item(TableName=table, Item=item("c", g="G", v="new"))
    client.update_item(TableName=table, Key=key("a"), UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"S": "new"}})
    client.delete_item(TableName=table, Key=key("b"))

    def seen(**kwargs) -> list:
        return sorted((i["sk"]["S"], i["v"]["S"]) for i in client.query(TableName=table, **kwargs)["Items"])

    base = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p"}}}
    index = {"IndexName": "by-g", "KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": {"S": "G"}}}
    past, present = [("a", "old"), ("b", "old")], [("a", "new"), ("c", "new")]
    assert seen(**index) == past, "an index query saw writes younger than the lag"
    assert seen(**base) == past, "a default (eventually consistent) query saw writes younger than the lag"
    assert sorted((i["sk"]["S"], i["v"]["S"]) for i in client.scan(TableName=table)["Items"]) == past
    assert client.get_item(TableName=table, Key=key("a"))["Item"]["v"] == {"S": "old"}
    assert "Item" not in client.get_item(TableName=table, Key=key("c"))
    batch = client.batch_get_item(RequestItems={table: {"Keys": [key("b")]}})["Responses"][table]
    assert [i["sk"]["S"] for i in batch] == ["b"], "a deleted item should still be seen"
    # strongly consistent reads see the present
    assert seen(**base, ConsistentRead=True) == present
    assert client.get_item(TableName=table, Key=key("c"), ConsistentRead=True)["Item"]["v"] == {"S": "new"}
    assert sorted(i["sk"]["S"] for i in client.scan(TableName=table, ConsistentRead=True)["Items"]) == ["a", "c"]
    got = client.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": key("c")}}])["Responses"]
    assert got[0]["Item"]["v"] == {"S": "new"}
    # and writes, with their conditions, act on the present
    with pytest.raises(ClientError) as raised:
        client.put_item(TableName=table, Item=item("c", g="G", v="again"), ConditionExpression="attribute_not_exists(pk)")
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_a_write_becomes_visible_to_index_queries_once_the_lag_has_passed(start_emulator):
    emulator = start_emulator(Emulation(index_lag_seconds=0.3))
    client = raw_client("dynamodb", emulator.endpoint_url)
    table = create_table(client, index=True)
    client.put_item(TableName=table, Item=item("a", g="G", v="new"))

    def index_sees_it() -> bool:
        query = client.query(TableName=table, IndexName="by-g", KeyConditionExpression="g = :g",
                             ExpressionAttributeValues={":g": {"S": "G"}})
        return [i["sk"]["S"] for i in query["Items"]] == ["a"]

    assert wait_until(index_sees_it, timeout=30), "the write never became visible"


def test_without_lag_every_read_sees_the_present(start_emulator):
    emulator = start_emulator(Emulation(index_lag_seconds=0))
    client = raw_client("dynamodb", emulator.endpoint_url)
    table = create_table(client, index=True)
    client.put_item(TableName=table, Item=item("a", g="G", v="new"))
    query = client.query(TableName=table, IndexName="by-g", KeyConditionExpression="g = :g",
                         ExpressionAttributeValues={":g": {"S": "G"}})
    assert [i["sk"]["S"] for i in query["Items"]] == ["a"]


def test_queries_of_the_table_and_its_index_answer_what_a_scan_of_the_whole_table_finds(start_emulator):
    """The emulator answers a query from the one partition it names (query_index.py), kept up to
    date through puts, updates that move an item between index partitions or out of the index,
    deletes, transactions (applied and cancelled) and refused writes; with a lag too."""
    behaviour = Emulation(index_lag_seconds=0)
    emulator = start_emulator(behaviour)
    client = raw_client("dynamodb", emulator.endpoint_url)
    table = create_table(client, index=True)
    rng = random.Random(11)

    def pick() -> dict:
        return {"pk": {"S": rng.choice("pq")}, "sk": {"S": f"s{rng.randrange(30)}"}}

    def write() -> None:
        k, g = pick(), rng.choice(["G", "H", None])
        kind = rng.choice(["put", "move", "unindex", "delete", "transaction", "refused"])
        if kind == "put":
            client.put_item(TableName=table, Item={**k, "v": {"S": "put"}, **({"g": {"S": g}} if g else {})})
        elif kind == "move" and g:
            client.update_item(TableName=table, Key=k, UpdateExpression="SET g = :g", ExpressionAttributeValues={":g": {"S": g}})
        elif kind == "unindex":
            client.update_item(TableName=table, Key=k, UpdateExpression="REMOVE g")
        elif kind == "delete":
            client.delete_item(TableName=table, Key=k)
        elif kind in ("transaction", "refused"):
            other = pick()
            if other == k:
                return
            condition = "attribute_exists(pk)" if kind == "transaction" else "attribute_not_exists(pk) AND attribute_exists(pk)"
            try:
                client.transact_write_items(TransactItems=[
                    {"Put": {"TableName": table, "Item": {**k, "v": {"S": "tx"}, "g": {"S": g or "G"}}}},
                    {"Update": {"TableName": table, "Key": other, "UpdateExpression": "SET g = :g",
                                "ExpressionAttributeValues": {":g": {"S": "H"}}, "ConditionExpression": condition}},
                ])
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "TransactionCanceledException"

    def found(**kwargs) -> list:
        """Every page's items (pages of 3 when ``Limit`` is given)."""
        items, start = [], {}
        while True:
            page = client.query(TableName=table, **kwargs, **start)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
        return sorted((i["pk"]["S"], i["sk"]["S"], i["v"]["S"] if "v" in i else None) for i in items)

    def check() -> None:
        everything = client.scan(TableName=table)["Items"]

        def expected(match) -> list:
            return sorted((i["pk"]["S"], i["sk"]["S"], i["v"]["S"] if "v" in i else None) for i in everything if match(i))

        for g in ("G", "H"):
            assert found(IndexName="by-g", KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": {"S": g}}) \
                == expected(lambda i: i.get("g") == {"S": g})
        for p in ("p", "q"):
            assert found(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": p}}) \
                == expected(lambda i: i["pk"] == {"S": p})
            # sort key conditions (the candidates are narrowed by them too), paged
            assert found(KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b", Limit=3,
                         ExpressionAttributeValues={":p": {"S": p}, ":a": {"S": "s12"}, ":b": {"S": "s25"}}) \
                == expected(lambda i: i["pk"] == {"S": p} and "s12" <= i["sk"]["S"] <= "s25")
            assert found(KeyConditionExpression="pk = :p AND begins_with(sk, :x)", ScanIndexForward=False,
                         ExpressionAttributeValues={":p": {"S": p}, ":x": {"S": "s1"}}) \
                == expected(lambda i: i["pk"] == {"S": p} and i["sk"]["S"].startswith("s1"))
        assert found(IndexName="by-g", KeyConditionExpression="g = :g AND sk > :a", Limit=3,
                     ExpressionAttributeValues={":g": {"S": "G"}, ":a": {"S": "s2"}}) \
            == expected(lambda i: i.get("g") == {"S": "G"} and i["sk"]["S"] > "s2")

    for step in range(200):
        if step == 120:
            behaviour.index_lag_seconds = 600  # from here on, reads (the scan too) see the table as it was
        write()
        if step % 10 == 0:
            check()
    check()


def test_answers_are_the_same_with_the_fast_serializer_as_with_motos_own(start_emulator):
    """fast_serialize.py copies wire-form attribute values as they are: every read and write
    answer, and the stream's records, are identical to what moto's own serializer gives."""
    from local import fast_serialize

    emulator = start_emulator()
    client = raw_client("dynamodb", emulator.endpoint_url)
    streams = raw_client("dynamodbstreams", emulator.endpoint_url)
    table = create_table(client, stream=True, index=True)
    kinds = {
        "s": {"S": "text é \u2603 \"quoted\""}, "empty": {"S": ""}, "n": {"N": "-12.50"}, "big": {"N": "123456789012345678901234567890"},
        "t": {"BOOL": True}, "f": {"BOOL": False}, "null": {"NULL": True}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]},
        "bin": {"B": b"\x00\xffraw"}, "bs": {"BS": [b"x", b"y"]},
        "m": {"M": {"inner": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"deep": {"NULL": True}, "b": {"B": b"z"}}}, {"L": []}]}, "e": {"M": {}}}},
        "l": {"L": [{"SS": ["q"]}, {"BOOL": False}]},
    }
    for n in range(3):
        client.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": f"k{n}"}, "g": {"S": "G"}, **kinds})

    def answers() -> list:
        key = {"pk": {"S": "p"}, "sk": {"S": "k0"}}
        got = [
            client.get_item(TableName=table, Key=key),
            client.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}}, Limit=2),
            client.query(TableName=table, IndexName="by-g", KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": {"S": "G"}}),
            client.scan(TableName=table),
            client.batch_get_item(RequestItems={table: {"Keys": [key]}}),
            client.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": key}}]),
            client.update_item(TableName=table, Key=key, UpdateExpression="SET extra = :e", ExpressionAttributeValues={":e": {"M": {"x": {"N": "1"}}}}, ReturnValues="ALL_NEW"),
            client.delete_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": "k2"}}, ReturnValues="ALL_OLD"),
        ]
        client.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": "k2"}, "g": {"S": "G"}, **kinds})
        arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got.append([{k: v for k, v in r.items() if k != "dynamodb"} | {"images": {k: v for k, v in r["dynamodb"].items() if k != "ApproximateCreationDateTime"}}
                    for r in streams.get_records(ShardIterator=iterator)["Records"]])
        for answer in got:
            if isinstance(answer, dict):
                answer.pop("ResponseMetadata", None)
        return got

    answers()  # once before: both rounds below then start from the same items
    fast = answers()
    fast_serialize.enabled = False
    try:
        slow = answers()
    finally:
        fast_serialize.enabled = True
    assert fast[:-1] == slow[:-1]
    # the stream: the second round's read has the first round's records too
    assert fast[-1] and fast[-1] == slow[-1][:len(fast[-1])]
    assert fast[0]["Item"]["m"] == kinds["m"] and fast[0]["Item"]["bin"] == kinds["bin"]


def test_writes_conditions_and_refusals_are_the_same_with_expressions_parsed_once(start_emulator):
    """fast_parse.py keeps parsed expressions and skips moto's checks a tree has passed: the
    same writes, run twice over (so the second round meets what the first kept), answer and
    refuse exactly as with moto parsing every time, and leave the same items."""
    from botocore.exceptions import ClientError

    from local import fast_parse

    emulator = start_emulator()
    client = raw_client("dynamodb", emulator.endpoint_url)
    key = {"pk": {"S": "p"}, "sk": {"S": "k"}}
    set_two = "SET #a = :a, #m.#k = :v"
    requests = [
        dict(UpdateExpression=set_two, ExpressionAttributeNames={"#a": "a", "#m": "m", "#k": "x"},
             ExpressionAttributeValues={":a": {"N": "1"}, ":v": {"S": "one"}}, ConditionExpression="attribute_exists(pk)"),
        # the same tree with other names: one of them is now the key (refused), or overlapping (refused)
        dict(UpdateExpression=set_two, ExpressionAttributeNames={"#a": "sk", "#m": "m", "#k": "x"},
             ExpressionAttributeValues={":a": {"S": "moved"}, ":v": {"S": "two"}}),
        dict(UpdateExpression=set_two, ExpressionAttributeNames={"#a": "m", "#m": "m", "#k": "x"},
             ExpressionAttributeValues={":a": {"S": "m"}, ":v": {"S": "three"}}),
        dict(UpdateExpression="SET a = :a SET b = :b", ExpressionAttributeValues={":a": {"N": "1"}, ":b": {"N": "2"}}),
        # a name the text also names literally: passes with "bar", overlaps with "a"
        dict(UpdateExpression="SET a = :a, #n = :b", ExpressionAttributeNames={"#n": "bar"},
             ExpressionAttributeValues={":a": {"N": "1"}, ":b": {"N": "2"}}),
        dict(UpdateExpression="SET a = :a, #n = :b", ExpressionAttributeNames={"#n": "a"},
             ExpressionAttributeValues={":a": {"N": "1"}, ":b": {"N": "2"}}),
        dict(UpdateExpression="ADD #a :n", ExpressionAttributeNames={"#a": "a"}, ExpressionAttributeValues={":n": {"N": "5"}, ":lim": {"N": "3"}},
             ConditionExpression="#a < :lim", ReturnValuesOnConditionCheckFailure="ALL_OLD"),
        # the same condition text with values that make it fail, then pass
        dict(UpdateExpression="ADD #a :n", ExpressionAttributeNames={"#a": "a"}, ExpressionAttributeValues={":n": {"N": "5"}, ":lim": {"N": "0"}},
             ConditionExpression="#a < :lim", ReturnValuesOnConditionCheckFailure="ALL_OLD"),
        dict(UpdateExpression="ADD #a :n", ExpressionAttributeNames={"#a": "a"}, ExpressionAttributeValues={":n": {"N": "5"}, ":lim": {"N": "100"}},
             ConditionExpression="#a < :lim", ReturnValuesOnConditionCheckFailure="ALL_OLD"),
        dict(UpdateExpression="ADD #m :n", ExpressionAttributeNames={"#m": "m"}, ExpressionAttributeValues={":n": {"N": "1"}}),
        dict(UpdateExpression="SET #h = if_not_exists(#h, :z) + :one REMOVE #g", ExpressionAttributeNames={"#h": "h", "#g": "g"},
             ExpressionAttributeValues={":z": {"N": "0"}, ":one": {"N": "1"}}),
        dict(UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "done"}, ":x": {"S": "y"}},
             ConditionExpression="#s IN (:x)"),
        # a set value taken into the item, then grown in place by an ADD: the same condition,
        # names and values again must see the request's set, not the item's grown one
        dict(UpdateExpression="SET #t = :set", ExpressionAttributeNames={"#t": "tags"}, ExpressionAttributeValues={":set": {"SS": ["a"]}},
             ConditionExpression="attribute_not_exists(#t) OR #t <> :set"),
        dict(UpdateExpression="ADD #t :x", ExpressionAttributeNames={"#t": "tags"}, ExpressionAttributeValues={":x": {"SS": ["b"]}}),
        dict(UpdateExpression="SET #t = :set", ExpressionAttributeNames={"#t": "tags"}, ExpressionAttributeValues={":set": {"SS": ["a"]}},
             ConditionExpression="attribute_not_exists(#t) OR #t <> :set"),
        # plain SET and REMOVE of top-level attributes (done without moto's parse), and what
        # looks plain but is left to moto: an index's key set, a table key removed, an empty
        # set, an undefined placeholder, a name given twice
        dict(UpdateExpression="set #p = :p, #q = :q remove #g, #absent", ExpressionAttributeNames={
             "#p": "p", "#q": "q", "#g": "g", "#absent": "absent"}, ExpressionAttributeValues={
             ":p": {"M": {"x": {"L": [{"N": "1"}, {"NULL": True}]}}}, ":q": {"S": ""}}),
        dict(UpdateExpression="REMOVE #q SET #p = :p", ExpressionAttributeNames={"#p": "p", "#q": "q"},
             ExpressionAttributeValues={":p": {"N": "2"}, ":one": {"N": "1"}}, ConditionExpression="#p <> :one"),
        dict(UpdateExpression="SET #p = :p", ExpressionAttributeNames={"#p": "p"}, ExpressionAttributeValues={
             ":p": {"N": "3"}, ":two": {"N": "2"}}, ConditionExpression="#p <> :two", ReturnValuesOnConditionCheckFailure="ALL_OLD"),
        dict(UpdateExpression="SET #i = :i", ExpressionAttributeNames={"#i": "gk"}, ExpressionAttributeValues={":i": {"N": "1"}}),
        dict(UpdateExpression="SET #i = :i", ExpressionAttributeNames={"#i": "gk"}, ExpressionAttributeValues={":i": {"S": ""}}),
        dict(UpdateExpression="SET #i = :i", ExpressionAttributeNames={"#i": "gk"}, ExpressionAttributeValues={":i": {"S": "in"}}),
        dict(UpdateExpression="REMOVE #i", ExpressionAttributeNames={"#i": "gk"}),
        dict(UpdateExpression="REMOVE #k", ExpressionAttributeNames={"#k": "sk"}),
        dict(UpdateExpression="SET #e = :e", ExpressionAttributeNames={"#e": "e"}, ExpressionAttributeValues={":e": {"SS": []}}),
        dict(UpdateExpression="SET #e = :e", ExpressionAttributeNames={"#e": "e"}, ExpressionAttributeValues={":f": {"N": "1"}}),
        dict(UpdateExpression="SET #e = :e REMOVE #e", ExpressionAttributeNames={"#e": "e"}, ExpressionAttributeValues={":e": {"N": "1"}}),
        dict(UpdateExpression="SET #e = :e, #f = :e", ExpressionAttributeNames={"#e": "e", "#f": "e"}, ExpressionAttributeValues={":e": {"N": "1"}}),
        dict(UpdateExpression="SET #big = :big", ExpressionAttributeNames={"#big": "big"},
             ExpressionAttributeValues={":big": {"S": "x" * 410_000}}),
        # the clauses in the order of the text: removing 300 KB first leaves room for 200 KB
        dict(UpdateExpression="SET #q2 = :q", ExpressionAttributeNames={"#q2": "q2"}, ExpressionAttributeValues={":q": {"S": "x" * 300_000}}),
        dict(UpdateExpression="REMOVE #q2 SET #p2 = :p", ExpressionAttributeNames={"#q2": "q2", "#p2": "p2"},
             ExpressionAttributeValues={":p": {"S": "y" * 200_000}}),
        dict(UpdateExpression="REMOVE #p2", ExpressionAttributeNames={"#p2": "p2"}),
        # a name that is another target's whole path: passes with "zzz", overlaps with "m.x"
        dict(UpdateExpression="SET m.x = :v, #n = :w", ExpressionAttributeNames={"#n": "zzz"},
             ExpressionAttributeValues={":v": {"N": "1"}, ":w": {"N": "2"}}),
        dict(UpdateExpression="SET m.x = :v, #n = :w", ExpressionAttributeNames={"#n": "m.x"},
             ExpressionAttributeValues={":v": {"N": "1"}, ":w": {"N": "2"}}),
    ] + [  # more distinct expressions than the caches keep (made small below)
        dict(UpdateExpression=f"SET #c{i} = :v", ExpressionAttributeNames={f"#c{i}": f"c{i % 3}"}, ExpressionAttributeValues={":v": {"N": str(i)}})
        for i in range(12)
    ]

    def run(table: str) -> list:
        client.put_item(TableName=table, Item={**key, "m": {"M": {}}, "a": {"N": "0"}, "g": {"S": "gone"}})
        answers = []
        for _ in range(2):
            for request in requests:
                try:
                    answer = client.update_item(TableName=table, Key=key, ReturnValues="ALL_NEW", **request)
                    answer.pop("ResponseMetadata")
                    answer.pop("ConsumedCapacity", None)
                    answers.append(answer)
                except ClientError as error:
                    answers.append((error.response["Error"], error.response.get("Item")))
        answers.append(client.scan(TableName=table)["Items"])
        return answers

    def index_table() -> str:  # an index on "gk" (a string)
        name = f"t-{uuid.uuid4().hex[:12]}"
        client.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in (("pk", "S"), ("sk", "S"), ("gk", "S"))],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{"IndexName": "by-gk", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                     "KeySchema": [{"AttributeName": "gk", "KeyType": "HASH"}]}])
        return name

    sizes = fast_parse.UPDATE_TREES, fast_parse.CONDITIONS
    fast_parse.UPDATE_TREES, fast_parse.CONDITIONS = 4, 4
    try:
        fast = run(index_table())
    finally:
        fast_parse.UPDATE_TREES, fast_parse.CONDITIONS = sizes
    fast_parse.enabled = False
    try:
        slow = run(index_table())
    finally:
        fast_parse.enabled = True
    assert fast == slow
    refused = [a for a in fast if isinstance(a, tuple)]
    assert {e["Code"] for e, _ in refused} == {"ValidationException", "ConditionalCheckFailedException"}
    assert len(refused) >= 20 and fast[-1][0]["a"] == {"N": "11"} and fast[-1][0]["tags"] == {"SS": ["a"]}
    assert fast[-1][0]["p"] == {"N": "2"} and "gk" not in fast[-1][0] and "q" not in fast[-1][0]


def test_a_page_that_stops_at_its_limit_answers_a_last_evaluated_key(start_emulator):
    """As DynamoDB, a query that stops after ``Limit`` items answers a ``LastEvaluatedKey`` when
    the partition goes on, even past the range; without ``Limit``, every match and no key."""
    emulator = start_emulator()
    client = raw_client("dynamodb", emulator.endpoint_url)
    table = create_table(client)
    for i in range(10):
        client.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": f"s{i}"}})
    ask = dict(TableName=table, KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
               ExpressionAttributeValues={":p": {"S": "p"}, ":a": {"S": "s2"}, ":b": {"S": "s4"}})
    page = client.query(**ask, Limit=3)
    assert [i["sk"]["S"] for i in page["Items"]] == ["s2", "s3", "s4"]
    assert page["LastEvaluatedKey"] == {"pk": {"S": "p"}, "sk": {"S": "s4"}}
    whole = client.query(**ask)
    assert [i["sk"]["S"] for i in whole["Items"]] == ["s2", "s3", "s4"] and "LastEvaluatedKey" not in whole


def test_the_ttl_reaper_deletes_exactly_the_expired_items_of_the_embedded_emulator(start_emulator):
    """The reaper reads the expired keys from the embedded emulator's memory (no Scan) and
    deletes each with a condition; what has not expired, or has no TTL
    attribute, stays. A fallback Scan (an emulator that is not embedded) finds the same."""
    from local.ttl import TtlReaper

    emulator = start_emulator()
    client = raw_client("dynamodb", emulator.endpoint_url)
    table = create_table(client)
    now = int(time.time())
    ttls = {"past": {"N": str(now - 5)}, "future": {"N": str(now + 3600)}, "none": None,
            "long-ago": {"N": str(now - 30 * 86400)}}
    for name, ttl in ttls.items():
        client.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": name}, **({"ttl": ttl} if ttl else {})})
    reaper = TtlReaper(emulator, {table: "ttl"}, period=60)
    assert sorted(k["sk"]["S"] for k in reaper.expired(client, table, "ttl", now)) == ["long-ago", "past"]
    assert emulator.expired_keys(table, "ttl", now) is not None  # read from memory, not scanned
    scanned = TtlReaper(Emulator(endpoint_url=emulator.endpoint_url), {table: "ttl"}, period=60)
    assert sorted(k["sk"]["S"] for k in scanned.expired(client, table, "ttl", now)) == ["long-ago", "past"]
    assert reaper.sweep(client, table, "ttl") == 2
    left = client.scan(TableName=table)["Items"]
    assert sorted(i["sk"]["S"] for i in left) == ["future", "none"]


# ---- streams -----------------------------------------------------------------------------------


def test_a_write_that_changes_nothing_writes_no_stream_record(start_emulator):
    emulator = start_emulator()
    client = raw_client("dynamodb", emulator.endpoint_url)
    streams = raw_client("dynamodbstreams", emulator.endpoint_url)
    table = create_table(client, stream=True)
    client.put_item(TableName=table, Item=item("a", v="1"))
    client.put_item(TableName=table, Item=item("a", v="1"))  # identical: no record
    client.update_item(TableName=table, Key=key("a"), UpdateExpression="SET v = :v",
                       ExpressionAttributeValues={":v": {"S": "1"}})  # the same value: no record
    client.delete_item(TableName=table, Key=key("absent"))  # nothing to delete: no record
    client.update_item(TableName=table, Key=key("a"), UpdateExpression="SET v = :v",
                       ExpressionAttributeValues={":v": {"S": "2"}})
    client.delete_item(TableName=table, Key=key("a"))

    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]


def test_a_reader_between_an_update_that_creates_an_item_and_the_next_write_misses_nothing(start_emulator):
    """An UpdateItem that creates its item writes one record, and the stream stays in order: a
    reader that read up to that record, then reads on, gets the next write's record (moto numbers
    records by their place in the shard: dropping its extra record from the middle left the next
    record a sequence number already given, and a reader past it never saw it)."""
    emulator = start_emulator()
    client = raw_client("dynamodb", emulator.endpoint_url)
    streams = raw_client("dynamodbstreams", emulator.endpoint_url)
    table = create_table(client, stream=True)
    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    seen = []
    for name in ("a", "b", "c"):
        client.put_item(TableName=table, Item=item(f"{name}-put"))
        client.update_item(TableName=table, Key=key(f"{name}-made"), UpdateExpression="SET v = :v",
                           ExpressionAttributeValues={":v": {"S": "1"}})  # creates the item
        page = streams.get_records(ShardIterator=iterator)  # read up to here, between two writes
        seen += page["Records"]
        iterator = page["NextShardIterator"]
    client.put_item(TableName=table, Item=item("last"))
    seen += streams.get_records(ShardIterator=iterator)["Records"]
    assert [(r["eventName"], r["dynamodb"]["Keys"]["sk"]["S"]) for r in seen] == [
        ("INSERT", "a-put"), ("INSERT", "a-made"), ("INSERT", "b-put"), ("INSERT", "b-made"),
        ("INSERT", "c-put"), ("INSERT", "c-made"), ("INSERT", "last")]
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in seen]
    assert numbers == sorted(set(numbers)), "sequence numbers are unique and in order"


def test_an_update_that_creates_its_item_is_checked_once_and_refused_whole(start_emulator):
    """moto checks an update that creates its item against an empty item, then again against
    the keys it made; the emulator skips the first check (a refusal leaves nothing anyway): the
    same updates are applied or refused, with the same errors, the same items and the same
    stream records as with both checks."""
    from local import moto_patches

    emulator = start_emulator()
    client = raw_client("dynamodb", emulator.endpoint_url)
    streams = raw_client("dynamodbstreams", emulator.endpoint_url)
    requests = [
        dict(UpdateExpression="SET #a = :a, #b = :b", ExpressionAttributeNames={"#a": "a", "#b": "d_1"},
             ExpressionAttributeValues={":a": {"N": "1"}, ":b": {"M": {"st": {"S": "ok"}}}},
             ConditionExpression="attribute_not_exists(#a)"),
        # the same tree with other names: one of them the key, or both the same attribute
        dict(UpdateExpression="SET #a = :a, #b = :b", ExpressionAttributeNames={"#a": "sk", "#b": "d_2"},
             ExpressionAttributeValues={":a": {"S": "moved"}, ":b": {"N": "2"}}),
        dict(UpdateExpression="SET #a = :a, #b = :b", ExpressionAttributeNames={"#a": "x", "#b": "x"},
             ExpressionAttributeValues={":a": {"N": "1"}, ":b": {"N": "2"}}),
        dict(UpdateExpression="SET #a = :a, #b = :b", ExpressionAttributeNames={"#a": "a", "#b": "d_3"},
             ExpressionAttributeValues={":a": {"N": "3"}, ":b": {"N": "3"}}),
        dict(UpdateExpression="SET #a = :a", ExpressionAttributeNames={"#a": "a"}, ExpressionAttributeValues={}),
        dict(UpdateExpression="SET #m.#k = :v", ExpressionAttributeNames={"#m": "m", "#k": "k"},
             ExpressionAttributeValues={":v": {"S": "nested in nothing"}}),
        dict(UpdateExpression="ADD #n :one", ExpressionAttributeNames={"#n": "n"}, ExpressionAttributeValues={":one": {"N": "1"}}),
        dict(UpdateExpression="ADD #n :s", ExpressionAttributeNames={"#n": "n"}, ExpressionAttributeValues={":s": {"S": "x"}}),
        dict(UpdateExpression="SET #big = :big", ExpressionAttributeNames={"#big": "big"},
             ExpressionAttributeValues={":big": {"S": "x" * 410_000}}),
        dict(UpdateExpression="SET #h = if_not_exists(#h, :z) + :one", ExpressionAttributeNames={"#h": "h"},
             ExpressionAttributeValues={":z": {"N": "0"}, ":one": {"N": "1"}}, ConditionExpression="attribute_not_exists(pk)"),
    ]

    def run() -> list:
        table = create_table(client, stream=True)
        answers = []
        for i, request in enumerate(requests):
            try:
                answer = client.update_item(TableName=table, Key=key(f"new-{i}"), ReturnValues="ALL_NEW", **request)
                answers.append(answer["Attributes"])
            except ClientError as error:
                answers.append(error.response["Error"]["Code"])
        client.put_item(TableName=table, Item=item("after"))
        arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = [(r["eventName"], r["dynamodb"]["Keys"]["sk"]["S"], r["dynamodb"]["SequenceNumber"])
                   for r in streams.get_records(ShardIterator=iterator)["Records"]]
        items = sorted(client.scan(TableName=table)["Items"], key=lambda i: i["sk"]["S"])
        return [answers, [(e, k) for e, k, _ in records], items, len({n for _, _, n in records}) == len(records)]

    from local import fast_parse

    once = run()
    moto_patches.skip_first_check = False
    try:
        twice = run()
        fast_parse.enabled = False  # moto parses, walks and executes every update itself
        try:
            plain_moto = run()
        finally:
            fast_parse.enabled = True
    finally:
        moto_patches.skip_first_check = True
    assert once == twice == plain_moto
    answers, records, items, numbered = once
    assert answers.count("ValidationException") == 6 and numbered
    assert [sk for _, sk in records] == ["new-0", "new-3", "new-6", "new-9", "after"]
    assert [i["sk"]["S"] for i in items] == ["after", "new-0", "new-3", "new-6", "new-9"]


# ---- faults ------------------------------------------------------------------------------------


def faulted(emulator: Emulator, calls: int, call) -> list:
    """Make ``calls`` requests; for each, None or (code, HTTP status) of the error it got."""
    out = []
    for i in range(calls):
        try:
            call(i)
            out.append(None)
        except ClientError as exc:
            out.append((exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]))
    return out


def armed(spec: str) -> FaultInjector:
    injector = FaultInjector(FaultSpec.parse(spec))
    injector.armed = True
    return injector


def test_dynamodb_faults_are_a_reproducible_fraction_of_throttles_and_server_errors(start_emulator):
    runs = []
    for _ in range(2):  # the same seed, the same traffic: the same faults
        emulator = start_emulator(faults=armed("dynamodb=0.25,seed=7"))
        client = raw_client("dynamodb", emulator.endpoint_url)
        emulator.faults.armed = False
        table = create_table(client)
        emulator.faults.armed = True
        results = faulted(emulator, 200, lambda i: client.put_item(TableName=table, Item=item(str(i))))
        emulator.faults.armed = False
        stored = {i["sk"]["S"] for i in client.scan(TableName=table, ConsistentRead=True)["Items"]}
        runs.append(results)
        assert set(results) == {None, ("ProvisionedThroughputExceededException", 400), ("InternalServerError", 500)}
        # a faulted request did nothing; every other one did what it said
        assert stored == {str(i) for i, r in enumerate(results) if r is None}
        assert 20 <= sum(r is not None for r in results) <= 80, "about a quarter of the requests should fail"
    assert runs[0] == runs[1]
    emulator = start_emulator(faults=armed("dynamodb=0.25,seed=8"))
    client = raw_client("dynamodb", emulator.endpoint_url)
    emulator.faults.armed = False
    table = create_table(client)
    emulator.faults.armed = True
    other = faulted(emulator, 200, lambda i: client.put_item(TableName=table, Item=item(str(i))))
    assert other != runs[0], "another seed gave the same faults"


def test_sqs_faults_and_the_sdk_retrying_them(start_emulator):
    emulator = start_emulator(faults=armed("sqs=0.3,seed=3"))
    emulator.faults.armed = False
    sqs = raw_client("sqs", emulator.endpoint_url)
    url = sqs.create_queue(QueueName=f"q-{time.monotonic_ns()}")["QueueUrl"]
    emulator.faults.armed = True
    results = faulted(emulator, 100, lambda i: sqs.send_message(QueueUrl=url, MessageBody=str(i)))
    assert set(results) == {None, ("ThrottlingException", 400), ("InternalFailure", 500)}
    # the SDK retries both kinds, as against AWS: with retries, every send gets through
    retrying = raw_client("sqs", emulator.endpoint_url, retries=10)
    retried = [retrying.send_message(QueueUrl=url, MessageBody=f"r{i}")["ResponseMetadata"]["RetryAttempts"]
               for i in range(6)]
    assert any(retried), "some sends met a fault and were retried"
    emulator.faults.armed = False
    sent = sum(r is None for r in results) + 6
    assert int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"]) == sent


def test_the_local_stacks_own_requests_are_never_faulted(start_emulator):
    emulator = start_emulator(faults=armed("dynamodb=1,sqs=1,seed=1"))
    own = emulator.client("dynamodb")  # what set-up and the pollers use
    table = create_table(own)
    for i in range(20):
        own.put_item(TableName=table, Item=item(str(i)))
    emulator.client("sqs").list_queues()
    with pytest.raises(ClientError):
        raw_client("dynamodb", emulator.endpoint_url).list_tables()


def test_nothing_is_faulted_before_the_stack_is_armed(start_emulator):
    emulator = start_emulator(faults=FaultInjector(FaultSpec.parse("dynamodb=1,sqs=1")))
    client = raw_client("dynamodb", emulator.endpoint_url)
    table = create_table(client)
    client.put_item(TableName=table, Item=item("a"))
    emulator.faults.armed = True
    with pytest.raises(ClientError):
        client.put_item(TableName=table, Item=item("b"))


def test_queries_from_many_threads_at_once_each_get_their_own_partition(table, aws):
    """moto in-process (the tests' mock_aws) is called from several threads at once, as a list
    page queries its shards in parallel: each query must get its own partition's items."""
    client = aws["dynamodb"]
    per = 40  # items a partition: a query long enough for the threads to interleave
    for p in range(8):
        for k in range(per):
            client.put_item(TableName=table, Item={"pk": {"S": f"P{p}"}, "sk": {"S": f"JOB#{k:02}"}, "id": {"S": f"P{p}-{k:02}"},
                                                   "act_pk": {"S": f"A{p}"}, "pad": {"S": "x" * 500}})
    wrong: list = []

    def ask(p: int) -> None:
        for i in range(16):
            if i % 2:
                items = client.query(TableName=table, KeyConditionExpression="pk = :p",
                                     ExpressionAttributeValues={":p": {"S": f"P{p}"}})["Items"]
            else:
                items = client.query(TableName=table, IndexName="active", KeyConditionExpression="act_pk = :a",
                                     ExpressionAttributeValues={":a": {"S": f"A{p}"}})["Items"]
            got = sorted(item["id"]["S"] for item in items)
            if got != [f"P{p}-{k:02}" for k in range(per)]:
                wrong.append((p, got))

    threads = [threading.Thread(target=ask, args=(p,)) for p in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong, wrong[:3]
