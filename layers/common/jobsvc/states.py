"""The job state machine, as data.

Everything else (the DynamoDB condition of a transition, the API's 409, the
documentation) is derived from ``TRANSITIONS``.
"""
from __future__ import annotations

CREATED = "created"
PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
EXPIRED = "expired"

#: from-status -> the statuses it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    CREATED: frozenset({PENDING, CANCELLED, EXPIRED}),
    PENDING: frozenset({RUNNING, CANCELLED, EXPIRED}),
    RUNNING: frozenset({COMPLETED, FAILED, CANCELLED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
    EXPIRED: frozenset(),
}

#: The poller's table for batch jobs (contract section 6): a provider batch is
#: ``running`` until it ends, and becomes ``expired`` when every request expired.
#: This is the one transition the poller makes that the API may not.
BATCH_TRANSITIONS: dict[str, frozenset[str]] = {**TRANSITIONS, RUNNING: TRANSITIONS[RUNNING] | {EXPIRED}}

STATUSES: tuple[str, ...] = tuple(TRANSITIONS)
TERMINAL: frozenset[str] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
ACTIVE: frozenset[str] = frozenset(STATUSES) - TERMINAL
#: each status's place on every path through the machine (TRANSITIONS lists them in that
#: order, and has no cycles): a job's history is put in this order, not in the order of the
#: writers' clocks (a sweep stamps its time, a user's write lands in between)
ORDER: dict[str, int] = {status: rank for rank, status in enumerate(STATUSES)}
assert all(ORDER[a] < ORDER[b] for a, targets in BATCH_TRANSITIONS.items() for b in targets)
#: statuses a job may be created in.
INITIAL: tuple[str, ...] = (CREATED, PENDING, RUNNING)


def is_terminal(status: str) -> bool:
    return status in TERMINAL


def can_transition(source: str, target: str) -> bool:
    return target in TRANSITIONS[source]


def sources_of(target: str, table: dict[str, frozenset[str]] = TRANSITIONS) -> frozenset[str]:
    """Every status from which ``target`` may be entered by a transition."""
    return frozenset(s for s, targets in table.items() if target in targets)


def allowed_current(target: str | None) -> frozenset[str]:
    """Statuses a job may be in for an update asking for ``target`` to succeed.

    ``None`` (no status in the update) and a non-terminal status the job already
    has are not transitions: they apply to any non-terminal job of that status.
    A terminal target is reachable only from its sources; asking a terminal job
    for the status it already has is answered without a write (see jobs.py).
    """
    if target is None:
        return ACTIVE
    if target in TERMINAL:
        return sources_of(target)
    return sources_of(target) | {target}


def table_markdown() -> str:
    """The transition table as the contract prints it (used by the docs)."""
    rows = ["| from | allowed to |", "|---|---|"]
    for source, targets in TRANSITIONS.items():
        allowed = ", ".join(f"`{t}`" for t in STATUSES if t in targets) or "nothing (terminal)"
        rows.append(f"| `{source}` | {allowed} |")
    return "\n".join(rows)
