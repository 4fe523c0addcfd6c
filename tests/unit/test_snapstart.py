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


#: what the routes of batches, webhooks and stats import besides the rest of the API
ROUTE_MODULES = [
    "jobsvc.batches", "jobsvc.providers", "jobsvc.providers.anthropic", "jobsvc.providers.openai",
    "jobsvc.providers.simulated", "jobsvc.providers.keys", "aws_lambda_powertools.utilities.parameters",
    "requests", "jobsvc.webhooks", "jobsvc.queues", "jobsvc.stats", "concurrent.futures.thread", "jobsvc.web",
]

#: the public routes, asked after the snapshot: nothing they do may import a module any more
PUBLIC_AFTER_SNAPSHOT = """
m._before_snapshot()
before = set(sys.modules)
event = json.load(open('events/api_health.json'))
class Context:
    function_name = 'test'; memory_limit_in_mb = 512; aws_request_id = 'test'
    invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:test'
    def get_remaining_time_in_millis(self): return 10000
for path in ['/v1/health', '/v1/openapi.json', *m.WEB_ROUTES]:
    event['rawPath'] = event['requestContext']['http']['path'] = path
    event['routeKey'] = 'GET ' + path
    assert m.lambda_handler(event, Context())['statusCode'] == 200, path
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _api_in_a_fresh_interpreter(then: str) -> dict:
    """Import the API function's module in a fresh interpreter, run ``then``, and say which of
    ROUTE_MODULES were loaded at import and after ``then`` (and ``printed``: the JSON line
    ``then`` printed, if it did)."""
    import json
    import subprocess
    import sys

    from tests.helpers import ROOT

    probe = (
        "import importlib.util, json, sys\n"
        f"names = {ROUTE_MODULES!r}\n"
        "spec = importlib.util.spec_from_file_location('app', 'functions/api/app.py')\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "at_import = [n for n in names if n in sys.modules]\n"
        "from jobsvc.storage import db\n"
        "db.client = lambda: None  # no credentials here: the client is the test above's matter\n"
        f"{then}\n"
        "print(json.dumps({'import': at_import, 'then': [n for n in names if n in sys.modules]}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "TABLE_NAME": "t",
           "PYTHONPATH": str(ROOT / "layers" / "common"), "POWERTOOLS_TRACE_DISABLED": "true"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    return {**json.loads(lines[-1]), "printed": json.loads(lines[-2]) if len(lines) > 1 else None}


def test_modules_only_some_routes_need_load_on_first_use():
    """The API function's import leaves out what only some routes need (batches and the
    provider adapters, webhooks, stats, ``requests``): the cold start of every other route."""
    seen = _api_in_a_fresh_interpreter("m.stats.read")
    assert seen["import"] == [] and seen["then"] == ["jobsvc.stats"]
    seen = _api_in_a_fresh_interpreter("m.webhooks.get_secret")
    assert "jobsvc.webhooks" in seen["then"] and "jobsvc.batches" not in seen["then"]
    seen = _api_in_a_fresh_interpreter("m.batches.create_batch")
    assert {"jobsvc.batches", "jobsvc.providers"} <= set(seen["then"]) and "jobsvc.webhooks" not in seen["then"]


def test_the_snapshot_holds_every_module_a_route_imports():
    """No request after a restore imports anything: the snapshot has it all, the provider
    adapters and their key lookup included."""
    seen = _api_in_a_fresh_interpreter("m._before_snapshot()")
    assert seen["then"] == ROUTE_MODULES
    # and what the public routes import, whatever it is: nothing, after the snapshot
    assert _api_in_a_fresh_interpreter(PUBLIC_AFTER_SNAPSHOT)["printed"] == []


def test_the_route_modules_stand_in_for_modules_without_loading_them():
    seen = _api_in_a_fresh_interpreter(
        "import copy\n"
        "assert repr(m.batches) == '<jobsvc.batches, imported on first use>'\n"
        "assert copy.copy(m.stats) is not None and not hasattr(m.webhooks, '__wrapped__')"
    )
    assert seen["then"] == []
