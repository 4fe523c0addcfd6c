"""What the embedded emulator emulates beyond moto, and the state of the request being served.

The emulator serves each request in a thread of its own and runs moto under one lock (see
emulator.py). The moto patches (conflicts.py, consistency.py) run inside moto, where there is no
request object to hand, so the emulator publishes the current request here, per thread. Outside
the emulator's server (moto used in-process by the integration tests) ``current()`` is None and
the patches keep moto's own behaviour.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from .conflicts import InUse
from .consistency import WriteHistory


@dataclass
class Emulation:
    """The settings of one emulator and the state they need (shared by its requests)."""

    #: LOCAL_TRANSACTION_CONFLICT_MS: how long a TransactWriteItems/TransactGetItems keeps its
    #: items in use (0: transactions never conflict)
    transaction_seconds: float = 0.02
    #: LOCAL_INDEX_LAG_MS: how far behind the present eventually consistent reads are (0: never)
    index_lag_seconds: float = 0.0
    in_use: InUse = field(default_factory=InUse)
    history: WriteHistory = field(default_factory=WriteHistory)


@dataclass
class Request:
    emulation: Emulation
    started: float = field(default_factory=time.monotonic)
    #: a transaction in this request holds its items until then: the answer waits for it
    hold_until: float = 0.0
    #: InUse.generation when the hold was taken (a release_all after it ends the hold)
    hold_generation: int | None = None


_local = threading.local()


def current() -> Request | None:
    return getattr(_local, "request", None)


@contextmanager
def serving(emulation: Emulation) -> Iterator[Request]:
    request = Request(emulation)
    _local.request = request
    try:
        yield request
    finally:
        _local.request = None
