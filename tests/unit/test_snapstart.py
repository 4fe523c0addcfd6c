"""SnapStart: a restored environment does not share what must differ per environment."""
from __future__ import annotations

from jobsvc import ids, queues
from jobsvc.storage import db
from tests.helpers import load_function


def test_after_restore_makes_random_state_shards_and_connections_anew(monkeypatch):
    api = load_function("api")
    client = db.client()
    sqs = queues.botocore_client()
    before = [ids.new_id("job", spread=True)[-1] for _ in range(3)]
    api._after_restore()
    assert db.client() is not client and queues.botocore_client() is not sqs
    # the round-robin starts anywhere again (two restored copies would otherwise deal the same shards)
    starts = set()
    for _ in range(20):
        ids.reseed()
        starts.add(int(ids.new_id("job", spread=True)[-1], 16) % 8)
    assert len(starts) > 1, before


def test_before_snapshot_makes_the_client_and_builds_every_model():
    """The models are built on first use (pydantic's defer_build: a lighter import); the
    snapshot is taken with all of them built, so no restored environment builds one."""
    from jobsvc import schemas

    api = load_function("api")
    db.reset_client()
    api._before_snapshot()
    assert db._client is not None
    models = [m for m in vars(schemas).values() if isinstance(m, type) and issubclass(m, schemas.BaseModel)]
    assert len(models) > 20 and all(m.__pydantic_complete__ for m in models if m is not schemas.BaseModel)
