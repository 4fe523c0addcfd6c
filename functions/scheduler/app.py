"""The scheduler function: EventBridge schedule -> batch poller and timeout sweep (jobsvc.scheduler)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger

from jobsvc import scheduler, tracing

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
@tracing.capture
def lambda_handler(event: dict, context: Any) -> dict:
    report = scheduler.run(context.get_remaining_time_in_millis, run_id=context.aws_request_id)
    if not report.ran:
        logger.info("another scheduler run holds the lease; this run does nothing",
                    lease_holder=report.lease_holder, lease_until=report.lease_until)
    else:
        logger.info("scheduler run", **asdict(report))
    return asdict(report)
