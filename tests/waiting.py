"""Waiting on progress, not on the clock: the one way the tests wait for something asynchronous.

A wait fails only when what it watches has stopped changing for ``stall`` seconds, never
because a fixed total ran out: a webhook retried six times over 40 s on a loaded machine
keeps "progressing" (one more attempt, one more row) and is allowed all the time it needs,
while a stuck pipeline fails after ``stall`` seconds of silence with a message naming what
was awaited and the last value seen.

It polls gently: the first check is immediate, then the interval doubles from ``poll`` up to
``max_poll`` (the checks themselves are requests to the emulator under test, which must not
be flooded while it is being timed).

    job = wait_until(lambda: api.job(job_id), done=lambda j: j["status"] == "completed",
                     what=f"job {job_id} to complete")
    wait_until(lambda: api.list_ids(source_id=tag) == [job_id], what="the job to be listed")
"""
from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: long enough for the slowest legitimate silence in the suite (a webhook retry backoff of
#: 16 s +25 % jitter plus the local pumps' polling) on a machine shared by several jobs
STALL = 30.0


class WaitStalled(AssertionError):
    """Nothing progressed for ``stall`` seconds (an AssertionError, so pytest shows a failure)."""


def _short(value: Any, limit: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def wait_until(
    check: Callable[[], T],
    *,
    what: str,
    done: Callable[[T], Any] = bool,
    stall: float = STALL,
    poll: float = 0.05,
    max_poll: float = 0.5,
) -> T:
    """Call ``check()`` until ``done(value)`` holds; return that value.

    Progress is any change in the value ``check()`` returns (compared with ``==``): make it
    return what moves while things go well (a count, a list, a status), not just a bool, when
    the wait may legitimately be long. Raises ``WaitStalled`` when the value has not changed
    for ``stall`` seconds.
    """
    started = last_change = time.monotonic()
    interval = poll
    checks = 1
    value = check()
    while not done(value):
        now = time.monotonic()
        if now - last_change >= stall:
            raise WaitStalled(
                f"waited for {what}: nothing changed for {now - last_change:.1f} s "
                f"({now - started:.1f} s in all, {checks} checks); last value seen: {_short(value)}"
            )
        time.sleep(min(interval, max(0.0, stall - (now - last_change)) + 0.01))
        interval = min(interval * 2, max_poll)
        previous, value = value, check()
        checks += 1
        if value != previous:
            last_change = time.monotonic()
    return value


def settle(check: Callable[[], T], *, quiet: float = 2.0, poll: float = 0.25) -> T:
    """The value of ``check()`` once it has stayed the same for ``quiet`` seconds.

    For "and nothing more comes" assertions (no extra webhook attempt, no second delivery):
    it returns as soon as the value has been stable for ``quiet`` seconds, and keeps watching
    while it still changes. (The caller asserts on the value; a value that never settles is
    a failure of its own, after ``STALL`` seconds.)
    """
    started = stable_since = time.monotonic()
    value = check()
    while time.monotonic() - stable_since < quiet:
        if time.monotonic() - started > STALL + quiet:
            raise WaitStalled(f"the value never settled for {quiet} s; last value seen: {_short(value)}")
        time.sleep(poll)
        current = check()
        if current != value:
            value, stable_since = current, time.monotonic()
    return value
