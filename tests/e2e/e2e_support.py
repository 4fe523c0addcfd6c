"""What the end-to-end tests share besides fixtures: the contract's state machine, id helpers.

The transition table is written out here from the contract (section 2), not imported from the
service, so that the tests check the service against the contract.
"""
from __future__ import annotations

import uuid

#: the job statuses and the transition table of contract section 2.
STATUSES = ("created", "pending", "running", "completed", "failed", "cancelled", "expired")
TERMINAL = frozenset({"completed", "failed", "cancelled", "expired"})
ACTIVE = frozenset({"created", "pending", "running"})
TRANSITIONS = {
    "created": frozenset({"pending", "cancelled", "expired"}),
    "pending": frozenset({"running", "cancelled", "expired"}),
    "running": frozenset({"completed", "failed", "cancelled"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
    "expired": frozenset(),
}
#: how a fresh job reaches each status: the status it is created in, then PATCHes along the table.
PATHS = {
    "created": ("created", []),
    "pending": ("pending", []),
    "running": ("running", []),
    "completed": ("running", ["completed"]),
    "failed": ("running", ["failed"]),
    "cancelled": ("created", ["cancelled"]),
    "expired": ("created", ["expired"]),
}


def shift_id(job_id: str, delta: int) -> str:
    """A well-formed id next to ``job_id`` (``delta`` added to its 128-bit UUID); it names no job."""
    prefix, _, body = job_id.partition("-")
    return f"{prefix}-{uuid.UUID(int=uuid.UUID(body).int + delta)}"


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"
