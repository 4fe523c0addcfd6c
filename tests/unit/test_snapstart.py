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


def test_modules_only_some_routes_need_load_on_first_use_and_before_the_snapshot():
    """The API function's import leaves out what only some routes need (batches and the
    provider adapters, webhooks, stats, ``requests``): the cold start of every other route.
    The first use of one loads it; the snapshot holds them all."""
    import json
    import subprocess
    import sys

    from tests.helpers import ROOT

    probe = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('app', 'functions/api/app.py')\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "names = ['jobsvc.batches', 'jobsvc.providers', 'jobsvc.providers.anthropic', 'jobsvc.webhooks',\n"
        "         'jobsvc.stats', 'jobsvc.queues', 'requests']\n"
        "def loaded():\n"
        "    return {n: n in sys.modules for n in names}\n"
        "at_import = loaded()\n"
        "first_use = m.batches.list_batches\n"
        "after_use = loaded()\n"
        "from jobsvc.storage import db\n"
        "db.client = lambda: None  # no credentials here: the client is the test above's matter\n"
        "m._before_snapshot()\n"
        "import jobsvc.batches\n"
        "print(json.dumps({'import': at_import, 'use': after_use, 'snapshot': loaded(),\n"
        "                  'same': first_use is jobsvc.batches.list_batches}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "TABLE_NAME": "t",
           "PYTHONPATH": str(ROOT / "layers" / "common"), "POWERTOOLS_TRACE_DISABLED": "true"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert not any(seen["import"].values()), seen["import"]
    assert seen["use"]["jobsvc.batches"] and seen["use"]["jobsvc.providers"] and not seen["use"]["jobsvc.webhooks"]
    assert all(seen["snapshot"].values()), seen["snapshot"]
    assert seen["same"]
