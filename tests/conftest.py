"""Shared test set-up: an isolated AWS environment, never a real account."""
from __future__ import annotations

import os

# Before anything imports jobsvc (it reads its configuration once).
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    TABLE_NAME="JobsTable",
    ALLOW_PRIVATE_CALLBACKS="false",
    POWERTOOLS_SERVICE_NAME="jobs-test",
    POWERTOOLS_LOG_LEVEL="WARNING",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_METRICS_NAMESPACE="JobLifecycle",
)
for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
    os.environ.pop(name, None)


import pytest  # noqa: E402


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups (else it never sees them)
def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (``make test`` runs two workers), every end-to-end test goes to one
    worker, so that one local stack serves them all, while the other worker runs the rest (the
    largest group is handed out first: the end-to-end tests, the longest chain of the run)."""
    import pytest

    def end_to_end(item) -> bool:
        return "tests/e2e/" in item.nodeid.replace("\\", "/") or item.nodeid.startswith("e2e/")

    for item in items:
        if end_to_end(item):
            item.add_marker(pytest.mark.xdist_group("e2e"))


# moto as the local stack's emulator patches it, in every test level (local/moto_patches.py:
# an UpdateItem refused or applied whole, with one stream record; transactions that cost what
# they touch; no stream record for a write that changes nothing)
from local import in_process, moto_patches  # noqa: E402

moto_patches.apply()
# the service's DynamoDB client speaks HTTP itself: while a test's mock_aws is on, moto answers it
in_process.install()
