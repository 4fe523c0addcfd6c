"""Python client of the job lifecycle service.

```python
from jobsvc_client import Client, JobCancelled, verify_webhook

c = Client()                       # JOBS_API_URL / JOBS_API_KEY, or Client(base_url, api_key)
job = c.create_job(job_type="run", metadata={"source_id": "a"})
for j in c.list_jobs(status="running"):
    ...
with c.track(job_type="run", heartbeat_timeout_seconds=30) as t:
    t.update(metadata={"step": 1})
    t.check()
```
"""
from __future__ import annotations

from ._client import NOT_GIVEN, Client, NotGiven
from ._errors import (
    ApiConnectionError,
    ApiError,
    ConfigurationError,
    JobCancelled,
    JobEnded,
    JobsError,
    WebhookVerificationError,
)
from ._http import parse_link_header
from ._track import Tracker
from ._version import __version__
from .webhooks import sign_webhook, verify_webhook

__all__ = [
    "Client",
    "Tracker",
    "NOT_GIVEN",
    "NotGiven",
    "JobsError",
    "ApiError",
    "ApiConnectionError",
    "ConfigurationError",
    "JobEnded",
    "JobCancelled",
    "WebhookVerificationError",
    "verify_webhook",
    "sign_webhook",
    "parse_link_header",
    "__version__",
]
