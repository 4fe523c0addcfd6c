"""Where everything lives in the one table: item keys, index keys, shards.

Items (``pk`` / ``sk``)::

  job                       ORG#<org>#<s>           JOB#<job id>          s = the job's shard, 0..7
  a job's webhook state     ORG#<org>#<s>           JOB#<job id>#WH       deliveries, attempts, callback_* view
  message                   JOB#<job id>            MSG#<message id>
  batch result              JOB#<job id>            ITEM#<custom id>
  idempotency record        IDEM#<org>#<key>        IDEM
  webhook secret            ORG#<org>               WEBHOOK_SECRET
  API key                   APIKEY#<sha256>         APIKEY
  provider batch owner      PROVBATCH#<p>#<id>      OWNER
  scheduler lease           LEASE#<name>            LEASE
  simulated provider batch  SIMBATCH#<id>           SIMBATCH
  stats counters            STATS#<org>             COUNTS | H#<hour>   (see stats.py)

Indexes (all ``KEYS_ONLY``: a heartbeat, a metadata update or a transition
that keeps an item's index keys writes no index; a page reads the items by key):

  active    act_pk = ORG#<org>#A<s mod 4>          id        jobs while created/pending/running
  due       due_pk = DUE#<0..31>                   due_at    when the sweep must look at a job again
  source    src_pk = ORG#<org>#S<s mod 4>#<source>  id        jobs with a string metadata.source_id
  batches   bat_pk = ORG#<org>#B<s mod 2>#RUN|END   id        batch jobs, running or ended
  polling   poll_pk = POLL#<0..7>                  polled_at running batches, least recently polled first
  failed    fail_pk = ORG#<org>#F<0..3>            fail_at   webhook state of deliveries that ended failed

An organization's jobs spread over 8 table partitions (``ORG#<org>#0..7``) and
4 partitions of each of its indexes; the shard comes from the job id, whose low
bits are dealt round-robin when the id is made (``ids.new_id``), so jobs spread
evenly. A list reads every shard of one partition family in parallel and merges
by id. The sweep's and the poller's indexes are service-wide and sharded 32 and
8 ways.
"""
from __future__ import annotations

from typing import Any

JOB_SHARDS = 8
INDEX_SHARDS = 4
DUE_SHARDS = 32
POLL_SHARDS = 8
FAILED_SHARDS = 4
#: per state (running, ended): a page of both reads 4 partitions, like the other indexes
BATCH_SHARDS = 2
WEBHOOK_SUFFIX = "#WH"

#: index name -> (partition key attribute, sort key attribute, sort key type)
INDEXES: dict[str, tuple[str, str, str]] = {
    "active": ("act_pk", "id", "S"),
    "due": ("due_pk", "due_at", "N"),
    "source": ("src_pk", "id", "S"),
    "batches": ("bat_pk", "id", "S"),
    "polling": ("poll_pk", "polled_at", "N"),
    "failed": ("fail_pk", "fail_at", "S"),
}
#: every attribute that is an index key (a job's index keys are kept up to date by its writes)
INDEX_KEY_ATTRIBUTES = frozenset(a for pk, sk, _ in INDEXES.values() for a in (pk, sk)) - {"id"}


def job_shard(job_id: str) -> int:
    """0..7, from the id's last hex digit (dealt round-robin when the id was made)."""
    return int(job_id[-1], 16) % JOB_SHARDS


def _low_bits(job_id: str) -> int:
    return int(job_id[-3:], 16)


def org_shard_pk(org: str, shard: int) -> str:
    return f"ORG#{org}#{shard}"


def org_of_pk(pk: str) -> str:
    """The organization of a job's partition key (organization ids never hold ``#``)."""
    return pk.removeprefix("ORG#").split("#", 1)[0]


def shard_of_pk(pk: str) -> int:
    """The job partition (0..7) of a job's partition key (``ORG#<org>#<s>``)."""
    return int(pk.rsplit("#", 1)[1])


def job_key(org: str, job_id: str) -> dict[str, str]:
    return {"pk": org_shard_pk(org, job_shard(job_id)), "sk": f"JOB#{job_id}"}


def webhook_key(org: str, job_id: str) -> dict[str, str]:
    return {"pk": org_shard_pk(org, job_shard(job_id)), "sk": f"JOB#{job_id}{WEBHOOK_SUFFIX}"}


def children_pk(job_id: str) -> str:
    """The partition of what is stored under a job: messages and batch results."""
    return f"JOB#{job_id}"


def id_of_sk(sk: str) -> str:
    return sk.removeprefix("JOB#").removesuffix(WEBHOOK_SUFFIX)


def active_pk(org: str, job_id: str) -> str:
    return f"ORG#{org}#A{job_shard(job_id) % INDEX_SHARDS}"


def active_pks(org: str) -> list[str]:
    return [f"ORG#{org}#A{n}" for n in range(INDEX_SHARDS)]


def source_pk(org: str, job_id: str, source_id: Any) -> str | None:
    """None: only a non-empty string ``metadata.source_id`` is indexed."""
    if not isinstance(source_id, str) or not source_id:
        return None
    return f"ORG#{org}#S{job_shard(job_id) % INDEX_SHARDS}#{source_id}"


def source_pks(org: str, source_id: str) -> list[str]:
    return [f"ORG#{org}#S{n}#{source_id}" for n in range(INDEX_SHARDS)]


def due_pk(job_id: str) -> str:
    return f"DUE#{(_low_bits(job_id) >> 3) % DUE_SHARDS}"


def due_pks() -> list[str]:
    return [f"DUE#{n}" for n in range(DUE_SHARDS)]


def batches_pk(org: str, job_id: str, running: bool) -> str:
    return f"ORG#{org}#B{job_shard(job_id) % BATCH_SHARDS}#{'RUN' if running else 'END'}"


def batches_pks(org: str, running: bool) -> list[str]:
    return [f"ORG#{org}#B{n}#{'RUN' if running else 'END'}" for n in range(BATCH_SHARDS)]


def poll_pk(job_id: str) -> str:
    return f"POLL#{(_low_bits(job_id) >> 3) % POLL_SHARDS}"


def poll_pks() -> list[str]:
    return [f"POLL#{n}" for n in range(POLL_SHARDS)]


def failed_pk(org: str, job_id: str) -> str:
    return f"ORG#{org}#F{job_shard(job_id) % FAILED_SHARDS}"


def failed_pks(org: str) -> list[str]:
    return [f"ORG#{org}#F{n}" for n in range(FAILED_SHARDS)]


def idempotency_key(org: str, key: str) -> dict[str, str]:
    return {"pk": f"IDEM#{org}#{key}", "sk": "IDEM"}


def secret_key(org: str) -> dict[str, str]:
    return {"pk": f"ORG#{org}", "sk": "WEBHOOK_SECRET"}


def api_key_key(key_hash: str) -> dict[str, str]:
    return {"pk": f"APIKEY#{key_hash}", "sk": "APIKEY"}


def owner_key(provider: str, provider_batch_id: str) -> dict[str, str]:
    return {"pk": f"PROVBATCH#{provider}#{provider_batch_id}", "sk": "OWNER"}


def lease_key(name: str) -> dict[str, str]:
    return {"pk": f"LEASE#{name}", "sk": "LEASE"}


def simulated_key(batch_id: str) -> dict[str, str]:
    return {"pk": f"SIMBATCH#{batch_id}", "sk": "SIMBATCH"}
