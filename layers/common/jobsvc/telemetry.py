"""Metrics, in CloudWatch's embedded metric format (Powertools), from every function.

Each call emits one metric with its own dimensions (the namespace is
``POWERTOOLS_METRICS_NAMESPACE``; Powertools adds the ``service`` dimension). The
dashboard and the alarms of template.yaml read exactly these names:

=====================  ===================================  =====================================
metric                 dimensions                           what
=====================  ===================================  =====================================
JobsCreated            job_type                             a job was created
Transitions            status, job_type                     a job entered a status (API, sweep, poller)
ProcessingTime (ms)    status, job_type                     created_at -> completed_at, at the end
WebhookAttempts        (none)                               one attempt made
WebhookDelivered       (none)                               an attempt succeeded
WebhookFailures        class                                timeout, connection, http_4xx, http_5xx,
                                                            redirect, refused (SSRF), gone (410)
WebhookLatency (ms)    (none)                               the transition -> the successful delivery
WebhookDeadLettered    (none)                               retries exhausted (or refused)
BatchPolls             provider                             one poll of a running batch
BatchPollErrors        provider                             a poll that failed (kept running)
SweepExpired           (none)                               created/pending jobs expired by the sweep
SweepHeartbeatFailed   (none)                               running jobs failed for a missed heartbeat
=====================  ===================================  =====================================
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

COUNT, MILLISECONDS = "Count", "Milliseconds"

#: The table above as data: name -> (unit, dimensions besides ``service``). The dashboard
#: and the alarms of template.yaml are checked against it (tests/unit/test_operations_template.py).
CATALOG: dict[str, tuple[str, tuple[str, ...]]] = {
    "JobsCreated": (COUNT, ("job_type",)),
    "Transitions": (COUNT, ("status", "job_type")),
    "ProcessingTime": (MILLISECONDS, ("status", "job_type")),
    "WebhookAttempts": (COUNT, ()),
    "WebhookDelivered": (COUNT, ()),
    "WebhookFailures": (COUNT, ("class",)),
    "WebhookLatency": (MILLISECONDS, ()),
    "WebhookDeadLettered": (COUNT, ()),
    "BatchPolls": (COUNT, ("provider",)),
    "BatchPollErrors": (COUNT, ("provider",)),
    "SweepExpired": (COUNT, ()),
    "SweepHeartbeatFailed": (COUNT, ()),
}


def emit(name: str, value: float = 1, unit: str = COUNT, **dimensions: Any) -> None:
    """Emit one metric now (a line of embedded-metric JSON on stdout). Never raises."""
    try:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        with single_metric(name=name, unit=getattr(MetricUnit, unit), value=value) as metric:
            for key, dimension in dimensions.items():
                metric.add_dimension(name=key, value=str(dimension))
    except Exception:  # metrics must never break the work they describe
        log.exception("could not emit metric %s", name)


def failure_class(status_code: int | None, error: str | None) -> str:
    """The class of a failed webhook attempt, for ``WebhookFailures``."""
    text = error or ""
    if text.startswith("timed out"):
        return "timeout"
    if status_code is not None:
        if status_code == 410:
            return "gone"
        if 300 <= status_code < 400:
            return "redirect"
        return "http_4xx" if status_code < 500 else "http_5xx"
    if text.startswith("refused"):
        return "refused"
    return "connection"
