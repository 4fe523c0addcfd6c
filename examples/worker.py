"""A worker that runs its work as a job, with ``jobsvc_client``'s ``track()``.

It does a few steps of simulated work, reports its progress after each step (a heartbeat
too), and checks between slices of work whether the job was cancelled from outside. The job
ends ``completed`` when the work is done, ``failed`` (stop_reason ``SimulatedFailure``) when a
step fails, ``cancelled`` on Ctrl-C; when someone cancels it meanwhile, the worker stops.

Run (with the client installed: ``pip install ./client``)::

    JOBS_API_URL=http://127.0.0.1:3000 JOBS_API_KEY=... python examples/worker.py --steps 5

Settings:
  JOBS_API_URL, JOBS_API_KEY   the API and your key (or --url, --key)
  --steps N                    steps of simulated work (default 5)
  --step-seconds S             how long each step takes (default 1)
  --heartbeat-timeout S        the job's heartbeat_timeout_seconds (default 30, at least 10):
                               if this worker dies, the service fails the job that long after
                               its last heartbeat
  --source-id X                the job's metadata.source_id (find it with `jobs list --source-id X`)
  --callback-url URL           a webhook the service calls when the job ends
  --job-id ID                  run an existing job instead of creating one
  --fail-at N                  make step N fail (to see a failed job)

Output: ``job <id>`` first, then a line per step, then how it ended. Exit status: 0 when the
job completed or was cancelled from outside, 1 when the work failed, 130 on Ctrl-C.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

from jobsvc_client import Client, JobEnded


class SimulatedFailure(Exception):
    """What --fail-at raises: the job's stop_reason becomes this class's name."""


def work(seconds: float, check: Callable[[], None]) -> None:
    """One step of pretend work, in slices, looking for a cancel between them."""
    deadline = time.monotonic() + seconds
    while True:
        check()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.2))


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="API base URL (default: $JOBS_API_URL)")
    parser.add_argument("--key", help="API key (default: $JOBS_API_KEY)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--step-seconds", type=float, default=1.0)
    parser.add_argument("--heartbeat-timeout", type=int, default=30)
    parser.add_argument("--source-id")
    parser.add_argument("--callback-url")
    parser.add_argument("--job-id")
    parser.add_argument("--fail-at", type=int)
    args = parser.parse_args(argv)

    client = Client(args.url, args.key)
    metadata = {"source_id": args.source_id} if args.source_id else {}
    job_id = args.job_id or "(not created)"
    try:
        with client.track(
            job_type="run", heartbeat_timeout_seconds=args.heartbeat_timeout, metadata=metadata,
            job_id=args.job_id, callback_url=args.callback_url,
        ) as t:
            job_id = t.job_id
            print(f"job {job_id}", flush=True)
            for step in range(1, args.steps + 1):
                work(args.step_seconds, t.check)
                if step == args.fail_at:
                    raise SimulatedFailure(f"step {step} failed")
                t.update(metadata={"step": step, "steps": args.steps, "progress": round(step / args.steps, 3)})
                print(f"step {step}/{args.steps} done", flush=True)
    except JobEnded as ended:  # JobCancelled included: someone stopped the job
        print(f"stopped: {ended}", flush=True)
        return 0
    except SimulatedFailure as exc:
        print(f"failed: {exc} (job {job_id} is failed)", flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted (job {job_id} is cancelled)", flush=True)
        return 130
    print(f"completed: job {job_id}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
