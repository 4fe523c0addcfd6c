"""``Client.track()``: run a block of work as a job, with heartbeats in the background."""
from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, Literal, Optional, Type

from ._errors import ApiConnectionError, ApiError, JobCancelled, JobEnded
from ._http import parse_time

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Tracker"]

logger = logging.getLogger("jobsvc_client")
TERMINAL = frozenset({"completed", "failed", "cancelled", "expired"})
Json = Dict[str, Any]


class Tracker:
    """Runs a block of work as a job: ``with client.track(...) as t:``.

    **Entering** creates the job with status ``running`` (``job_type``, ``metadata``,
    ``heartbeat_timeout_seconds``, ``callback_url``, ``expires_in_seconds``; the create carries
    an ``Idempotency-Key``), or, given ``job_id``, moves that existing job to ``running``
    (through ``pending`` if it is ``created``; ``metadata`` and ``callback_url`` are applied to
    it). An error here raises from the ``with`` statement and the block does not run.

    **Inside the block** a daemon thread sends a heartbeat (an empty ``PATCH``: the contract
    counts every successful ``PATCH`` as one) every ``heartbeat_interval`` seconds, by default
    a third of the job's ``heartbeat_timeout_seconds`` (no thread when the job has no
    timeout). :meth:`update` reports progress and counts as a heartbeat too. A heartbeat that
    fails is retried with the client's retries and then again later: it never raises into the
    worker. When a heartbeat is refused with ``409`` because the job is terminal (cancelled
    from outside, or failed by the sweep), the thread stops and remembers it;
    :meth:`check` then raises :class:`JobCancelled` (or :class:`JobEnded` for any other end,
    or a deleted job). :meth:`check` also asks the API itself when its last news of the job is
    older than ``check_interval`` seconds (``check(refresh=True)`` always asks).

    **Leaving the block** first stops the heartbeat thread and waits for it (it never
    outlives the block), then:

    - normal exit: the job becomes ``completed``. If it already ended outside the worker (for
      example cancelled), nothing is sent and the block ends quietly. If completing fails after
      the client's retries (the API unreachable), that error is raised.
    - an exception: the job becomes ``failed`` with ``stop_reason`` = the exception's class
      name, and the exception propagates (it is never swallowed, even if marking the job
      failed fails: that is only logged).
    - :class:`KeyboardInterrupt`: the job is cancelled (``PATCH .../cancel``), and the
      interrupt propagates.
    - :class:`JobCancelled` / :class:`JobEnded` of this job: the job is left as it is and the
      exception propagates.

    A process killed outright (``SIGKILL``) sends nothing: the service's sweep fails the job
    with ``heartbeat_timeout`` once no heartbeat came for ``heartbeat_timeout_seconds``.

    Attributes: :attr:`job` (the latest job dict), :attr:`job_id`, :attr:`ended` (the
    exception :meth:`check` would raise, or ``None``), :attr:`heartbeats` and
    :attr:`heartbeat_failures` (counts).
    """

    def __init__(
        self,
        client: "Client",
        *,
        job_type: str = "run",
        heartbeat_timeout_seconds: Optional[int] = 30,
        metadata: Optional[Json] = None,
        job_id: Optional[str] = None,
        callback_url: Optional[str] = None,
        expires_in_seconds: Optional[int] = None,
        idempotency_key: Optional[str] = None,
        heartbeat_interval: Optional[float] = None,
        check_interval: float = 2.0,
    ) -> None:
        self._client = client
        self._job_type = job_type
        self._timeout = heartbeat_timeout_seconds
        self._metadata = metadata
        self._given_id = job_id
        self._callback_url = callback_url
        self._expires_in = expires_in_seconds
        self._idempotency_key = idempotency_key
        self._interval = heartbeat_interval
        self._check_interval = check_interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._job: Optional[Json] = None
        self._ended: Optional[JobEnded] = None
        self._entered = False
        self._last_beat = 0.0  # monotonic time of the last successful PATCH
        self._last_news = 0.0  # monotonic time of the last answer about the job
        self.heartbeats = 0
        self.heartbeat_failures = 0

    # ---- state -------------------------------------------------------------------------

    @property
    def job(self) -> Json:
        """The latest job dict seen (from the create, a heartbeat, an update or a check)."""
        if self._job is None:
            raise RuntimeError("the job exists once the with block is entered")
        return self._job

    @property
    def job_id(self) -> str:
        return str(self.job["id"])

    @property
    def ended(self) -> Optional[JobEnded]:
        """The :class:`JobEnded` / :class:`JobCancelled` that :meth:`check` raises, once the job
        ended outside this worker; ``None`` before."""
        return self._ended

    @property
    def cancelled(self) -> bool:
        return isinstance(self._ended, JobCancelled)

    @property
    def heartbeat_thread(self) -> Optional[threading.Thread]:
        return self._thread

    def _set_job(self, job: Json, beat: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            current = self._job
            # answers may arrive out of order (heartbeat thread and worker): keep the newest
            if current is None or _newer_or_same(job, current):
                self._job = job
            self._last_news = now
            if beat:
                self._last_beat = now

    def _mark_ended(self, status: Optional[str], job: Optional[Json] = None) -> JobEnded:
        job_id = (job or self._job or {}).get("id") or self._given_id or ""
        with self._lock:
            if self._ended is None:
                if status == "cancelled":
                    self._ended = JobCancelled(f"job {job_id} was cancelled", job_id, status, job)
                elif status is None:
                    self._ended = JobEnded(f"job {job_id} was deleted", job_id, None, job)
                else:
                    reason = (job or {}).get("stop_reason")
                    self._ended = JobEnded(
                        f"job {job_id} ended {status}" + (f" ({reason})" if reason else "") + " outside this worker",
                        job_id, status, job,
                    )
            if job is not None:
                self._job = job
            return self._ended

    def _raise_ended(self) -> None:
        ended = self._ended
        if ended is not None:
            # a fresh exception each time (raising one object again would pile up tracebacks)
            raise type(ended)(str(ended), ended.job_id, ended.status, ended.job)

    def _ended_from(self, error: ApiError) -> Optional[JobEnded]:
        """The end of the job that an error answer reveals (409 terminal, 404), else ``None``."""
        if error.status_code == 409 and error.current_status in TERMINAL:
            job = None
            try:
                job = self._client.get_job(self.job_id)
            except Exception:  # only to show the latest job; the 409 already said enough
                pass
            return self._mark_ended(error.current_status, job)
        if error.status_code == 404:
            return self._mark_ended(None)
        return None

    # ---- the worker's calls ------------------------------------------------------------

    def update(
        self,
        metadata: Optional[Json] = None,
        *,
        ttft_ns: Optional[int] = None,
        total_duration_ns: Optional[int] = None,
    ) -> Json:
        """Report progress (metadata merged key by key, a key set to ``None`` is removed; and/or
        ``ttft_ns``, ``total_duration_ns``; ``None``: not sent); also a heartbeat. Returns the
        job. Raises :class:`JobCancelled` / :class:`JobEnded` if the job ended outside this
        worker."""
        self._raise_ended()
        members: Dict[str, Any] = {}
        if metadata is not None:
            members["metadata"] = metadata
        if ttft_ns is not None:
            members["ttft_ns"] = ttft_ns
        if total_duration_ns is not None:
            members["total_duration_ns"] = total_duration_ns
        try:
            job = self._client.update_job(self.job_id, **members)
        except ApiError as error:
            if self._ended_from(error) is not None:
                self._raise_ended()
            raise
        self._set_job(job, beat=True)
        return job

    def check(self, refresh: Optional[bool] = None) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled from outside (:class:`JobEnded`
        for any other end outside this worker); return otherwise.

        Reads the job from the API when the last news of it is older than ``check_interval``
        seconds (``refresh=True``: always; ``False``: never, only what the heartbeat thread
        found). A failed read is logged and ignored: a network blip does not stop the worker.
        """
        self._raise_ended()
        if self._job is None:
            raise RuntimeError("check() is for inside the with block")
        if refresh is False:
            return
        if refresh is None and time.monotonic() - self._last_news < self._check_interval:
            return
        try:
            job = self._client.get_job(self.job_id)
        except ApiError as error:
            if self._ended_from(error) is None:
                logger.warning("job %s: could not read it to check for a cancel: %s", self.job_id, error)
        except ApiConnectionError as error:
            logger.warning("job %s: could not read it to check for a cancel: %s", self.job_id, error)
        else:
            self._set_job(job)
            if job.get("status") in TERMINAL:
                self._mark_ended(job["status"], job)
        self._raise_ended()

    # ---- the block ---------------------------------------------------------------------

    def __enter__(self) -> "Tracker":
        if self._entered:
            raise RuntimeError("a Tracker runs one block; call client.track() again")
        self._entered = True
        if self._given_id is None:
            job = self._client.create_job(
                job_type=self._job_type, status="running", metadata=self._metadata,
                heartbeat_timeout_seconds=self._timeout, callback_url=self._callback_url,
                expires_in_seconds=self._expires_in, idempotency_key=self._idempotency_key,
            )
        else:
            job = self._start_existing(self._given_id)
        self._set_job(job, beat=True)
        timeout = job.get("heartbeat_timeout_seconds") or self._timeout
        interval = self._interval if self._interval is not None else (timeout / 3 if timeout else None)
        if interval:
            self._thread = threading.Thread(
                target=self._heartbeats, args=(float(interval),), name=f"jobsvc-heartbeat-{job['id']}", daemon=True,
            )
            self._thread.start()
        return self

    def _start_existing(self, job_id: str) -> Json:
        extra: Dict[str, Any] = {}
        if self._metadata:
            extra["metadata"] = self._metadata
        if self._callback_url is not None:
            extra["callback_url"] = self._callback_url
        try:
            return self._client.update_job(job_id, status="running", **extra)
        except ApiError as error:
            if error.status_code == 409 and error.current_status == "created":
                self._client.update_job(job_id, status="pending")
                return self._client.update_job(job_id, status="running", **extra)
            raise

    def _heartbeats(self, interval: float) -> None:
        path = f"/v1/jobs/{self.job_id}"
        retry_in = min(interval, max(1.0, interval / 3))
        next_at = self._last_beat + interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            with self._lock:
                due = self._last_beat + interval
            if time.monotonic() < due:  # an update() counted as a heartbeat meanwhile
                next_at = due
                continue
            try:
                # one try, cut at half the interval: a hung request must not outlast the
                # heartbeat timeout (the loop tries again soon, as often as it takes)
                job = self._client._call("PATCH", path, json={}, stop=self._stop,
                                         timeout=min(self._client.timeout, max(1.0, interval / 2)), retries=0)
            except ApiError as error:
                if self._ended_from(error) is not None:
                    logger.info("job %s: %s; heartbeats stop", self.job_id, self._ended)
                    return
                self.heartbeat_failures += 1
                logger.warning("job %s: heartbeat refused: %s", self.job_id, error)
                next_at = time.monotonic() + retry_in
            except ApiConnectionError as error:
                if self._stop.is_set():
                    return
                self.heartbeat_failures += 1
                logger.warning("job %s: heartbeat failed: %s", self.job_id, error)
                next_at = time.monotonic() + retry_in
            except Exception:  # never let the thread die silently on a surprise
                self.heartbeat_failures += 1
                logger.exception("job %s: heartbeat failed", self.job_id)
                next_at = time.monotonic() + retry_in
            else:
                self.heartbeats += 1
                self._set_job(job, beat=True)
                next_at = self._last_beat + interval

    def _stop_heartbeats(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]:
        self._stop_heartbeats()
        if exc_type is None:
            if self._ended is not None:
                return False  # ended outside the worker: completing it would be refused
            try:
                self._set_job(self._client.update_job(self.job_id, status="completed"))
            except ApiError as error:
                if self._ended_from(error) is None:
                    raise
                logger.info("job %s: %s before it could be completed", self.job_id, self._ended)
            return False
        if isinstance(exc, JobEnded) and exc.job_id == self.job_id:
            return False  # left as it is
        if self._ended is not None:
            return False  # already ended outside the worker: nothing to record
        try:
            if issubclass(exc_type, KeyboardInterrupt):
                self._set_job(self._client.cancel_job(self.job_id))
            else:
                reason = exc_type.__name__[:64]
                self._set_job(self._client.update_job(self.job_id, status="failed", stop_reason=reason))
        except Exception as error:  # the worker's own exception matters more: log, never replace it
            logger.warning("job %s: could not record the end of the block (%s): %s", self.job_id, exc_type.__name__, error)
        return False


def _newer_or_same(job: Json, current: Json) -> bool:
    try:
        new, old = parse_time(job.get("last_updated_at")), parse_time(current.get("last_updated_at"))
    except ValueError:
        return True
    if new is None or old is None:
        return True
    return new >= old
