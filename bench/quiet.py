"""For benchmarks that run the local stack in their own process: its function instances inherit
file descriptor 1 and print a metric or log line per event, which would bury the report."""
from __future__ import annotations

import os
import sys


def quiet_functions() -> None:
    """Send file descriptor 1 (what the instances inherit) to /dev/null, and this process's
    ``print`` to the real standard output."""
    sys.stdout.flush()
    report = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = report
