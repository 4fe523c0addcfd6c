"""What the API-level and end-to-end tests share: the contract's state machine, id helpers, and
the job-level verbs of a client (create, read, list, drive a job to a status) written once over
any ``request(method, path, **kw)`` that answers like ``requests``.

The transition table is written out here from the contract (section 2), not imported from the
service, so that the tests check the service against the contract.
"""
from __future__ import annotations

import uuid
from typing import Any

from tests.waiting import wait_until

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
#: every (from, to) pair over the seven statuses
PAIRS = [(source, target) for source in STATUSES for target in STATUSES]
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
JOB_FIELDS = frozenset({
    "id", "status", "job_type", "created_at", "last_updated_at", "completed_at", "user_id",
    "organization_id", "metadata", "background", "stop_reason", "callback_url", "callback_sent_at",
    "callback_status_code", "callback_error", "ttft_ns", "total_duration_ns", "expires_at",
    "heartbeat_timeout_seconds",
})
MESSAGE_FIELDS = frozenset({"id", "job_id", "role", "content", "created_at"})


def job_routes(job_id: str) -> list[tuple[str, str, dict | None]]:
    """Every route that names one job, with a body that would change it if it were allowed:
    the one list the 404 (other organization, malformed id, unknown id, deleted job) and 401
    tests run over."""
    path = f"/v1/jobs/{job_id}"
    return [
        ("GET", path, None),
        ("PATCH", path, {"metadata": {"intruder": True}}),
        ("PATCH", path, {"status": "completed"}),
        ("PATCH", path, {"status": "running"}),
        ("PATCH", path, {}),
        ("PATCH", path + "/cancel", None),
        ("DELETE", path, None),
        ("POST", path + "/messages", {"role": "assistant", "content": "intruder"}),
        ("GET", path + "/messages", None),
        ("GET", path + "/callbacks", None),
        ("POST", path + "/callbacks/redeliver", None),
    ]


def shift_id(job_id: str, delta: int) -> str:
    """A well-formed id next to ``job_id`` (``delta`` added to its 128-bit UUID); it names no job."""
    prefix, _, body = job_id.partition("-")
    return f"{prefix}-{uuid.UUID(int=uuid.UUID(body).int + delta)}"


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def next_link(header: str | None) -> str | None:
    """The URL of ``rel="next"`` in a ``Link`` header (RFC 8288), or None."""
    for part in (header or "").split(","):
        if 'rel="next"' in part and "<" in part:
            return part[part.index("<") + 1:part.index(">")]
    return None


class JobVerbs:
    """The job-level verbs of a test client; subclasses provide ``request``."""

    def request(self, method: str, path: str, **kwargs: Any):  # pragma: no cover - abstract
        raise NotImplementedError

    def get(self, path: str, **kw: Any):
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any):
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any):
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any):
        return self.request("DELETE", path, **kw)

    def create(self, **body: Any) -> dict:
        response = self.post("/v1/jobs", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def job(self, job_id: str) -> dict:
        """GET a job that must exist."""
        response = self.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def page(self, path: str = "/v1/jobs", **params: Any):
        """One page of a list that must succeed (``None`` parameters are left out): the response."""
        response = self.get(path, params={k: v for k, v in params.items() if v is not None})
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), list), response.text
        return response

    def list(self, path: str = "/v1/jobs", **params: Any) -> list[dict]:
        """The first ``limit`` items of a list (the whole list without ``limit``... up to its
        default page size): a page may stop short while more follow (the server bounds each
        request's work and size), so this follows ``Link: <...>; rel="next"`` until it has them."""
        from urllib.parse import parse_qsl, urlsplit

        wanted = int(params.get("limit") or 50)
        response = self.page(path, **params)
        items: list[dict] = response.json()
        for _ in range(100):
            following = next_link(response.headers.get("Link"))
            if following is None or len(items) >= wanted:
                return items[:wanted]
            url = urlsplit(following)
            assert url.path == path, following
            response = self.page(path, **dict(parse_qsl(url.query)))
            items += response.json()
        raise AssertionError(f"{path} {params}: pages without end")

    def list_all(self, path: str = "/v1/jobs", **params: Any) -> list[dict]:
        """Every item of a list, every page followed."""
        from urllib.parse import parse_qsl, urlsplit

        response = self.page(path, **params)
        items: list[dict] = response.json()
        for _ in range(1000):
            following = next_link(response.headers.get("Link"))
            if following is None:
                return items
            url = urlsplit(following)
            response = self.page(url.path, **dict(parse_qsl(url.query)))
            items += response.json()
        raise AssertionError(f"{path} {params}: pages without end")

    def list_ids(self, path: str = "/v1/jobs", **params: Any) -> list[str]:
        return [item["id"] for item in self.list(path, **params)]

    def listed(self, expected: list, path: str = "/v1/jobs", *, ids: bool = True, **params: Any) -> list:
        """The list (ids, or whole items) once it equals ``expected``.

        Lists read indexes, which in AWS (and on a local stack with an index lag) may trail a
        write by a moment: a list right after a write waits for the content the test needs,
        and fails with the last list seen if it never comes.
        """
        read = (lambda: self.list_ids(path, **params)) if ids else (lambda: self.list(path, **params))
        return wait_until(read, done=lambda got: got == expected, what=f"GET {path} {params} to list {expected}")

    def patch_ok(self, job_id: str, **body: Any) -> dict:
        response = self.patch(f"/v1/jobs/{job_id}", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def drive(self, status: str, **create: Any) -> dict:
        """A fresh job brought to ``status`` through allowed transitions only."""
        initial, steps = PATHS[status]
        job = self.create(status=initial, **create)
        for step in steps:
            job = self.patch_ok(job["id"], status=step)
        assert job["status"] == status
        return job
