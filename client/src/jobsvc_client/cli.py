"""The ``jobs`` command: list, inspect, cancel and watch jobs from a terminal."""
from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, TextIO

from ._client import Client
from ._errors import ApiConnectionError, ApiError, ConfigurationError, format_detail
from ._http import parse_time
from ._version import __version__

__all__ = ["main", "build_parser", "parse_duration", "render_table", "EXIT_OK", "EXIT_API", "EXIT_USAGE", "EXIT_CONNECTION"]

EXIT_OK = 0
EXIT_API = 1  # the API answered with an error
EXIT_USAGE = 2  # bad arguments or configuration (argparse uses 2 as well)
EXIT_CONNECTION = 3  # the API could not be reached

STATUSES = ("created", "pending", "running", "completed", "failed", "cancelled", "expired")
JOB_TYPES = ("job", "run", "batch")
DEFAULT_ROWS = 50

EPILOG = """\
configuration:
  JOBS_API_URL   the API's base URL (or --url), e.g. http://127.0.0.1:3000
  JOBS_API_KEY   your API key (or --key)

exit codes:
  0  success (also when `jobs watch` is stopped with Ctrl-C)
  1  the API answered with an error (printed as "error: <status> <detail>" on stderr)
  2  usage error: bad arguments, or no URL / key configured
  3  the API could not be reached (connection refused, DNS, timeout), after retries

durations (--older-than): a number and a unit, s m h d or w, possibly combined: 90s, 15m, 1h, 1h30m, 2d
"""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class UsageError(Exception):
    """A usage problem found after parsing (exit 2)."""


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``2d``, ``1w``, combinations such as ``1h30m``; a bare number is
    seconds. Raises ``ValueError`` for anything else, for zero and for negative values."""
    value = text.strip().lower().replace(" ", "")
    if not value:
        raise ValueError("empty duration")
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    else:
        pos, seconds, seen = 0, 0.0, set()
        for match in _DURATION_PART.finditer(value):
            if match.start() != pos or match.group(2) in seen:
                raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 1h, 2d)")
            seen.add(match.group(2))
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(value):
            raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 1h, 2d)")
    if seconds <= 0:
        raise ValueError(f"the duration must be more than zero: {text!r}")
    return timedelta(seconds=seconds)


def _duration_arg(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than zero: {text!r}")
    return value


# ---- output ---------------------------------------------------------------------------


def render_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns two spaces apart, a header line first; ``None`` shows as ``-``."""
    cells = [[str(h) for h in headers]] + [["-" if c is None or c == "" else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
    return "\n".join(lines)


def format_age(when: Optional[str], now: datetime) -> str:
    """``"45s ago"``, ``"12m ago"``, ``"3h20m ago"``, ``"2d4h ago"`` (``-`` if unknown)."""
    try:
        moment = parse_time(when)
    except ValueError:
        return str(when)
    if moment is None:
        return "-"
    seconds = int((now - moment).total_seconds())
    suffix = " ago"
    if seconds < 0:
        seconds, suffix = -seconds, " from now"
    if seconds < 60:
        text = f"{seconds}s"
    elif seconds < 3600:
        text = f"{seconds // 60}m"
    elif seconds < 86400:
        text = f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    else:
        text = f"{seconds // 86400}d{seconds % 86400 // 3600}h"
    return text + suffix


JOB_COLUMNS = ("ID", "STATUS", "TYPE", "CREATED", "UPDATED", "STOP_REASON", "SOURCE_ID")


def job_row(job: Dict[str, Any], now: datetime) -> List[Any]:
    metadata = job.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    return [
        job.get("id"), job.get("status"), job.get("job_type"), format_age(job.get("created_at"), now),
        format_age(job.get("last_updated_at"), now), job.get("stop_reason"), metadata.get("source_id"),
    ]


def jobs_table(jobs: Sequence[Dict[str, Any]], now: Optional[datetime] = None) -> str:
    now = now or datetime.now(timezone.utc)
    return render_table(JOB_COLUMNS, [job_row(j, now) for j in jobs])


def job_details(job: Dict[str, Any], now: Optional[datetime] = None) -> str:
    """One job as aligned ``name  value`` lines (times with their age)."""
    now = now or datetime.now(timezone.utc)
    rows = []
    for name, value in job.items():
        if isinstance(value, (dict, list)):
            shown = json.dumps(value, ensure_ascii=False, sort_keys=True)
        elif value is None:
            shown = "-"
        elif name.endswith("_at") and isinstance(value, str):
            shown = f"{value} ({format_age(value, now)})"
        else:
            shown = str(value)
        rows.append((name, shown))
    width = max((len(n) for n, _ in rows), default=0)
    return "\n".join(f"{n.ljust(width)}  {v}" for n, v in rows)


def stats_text(stats: Dict[str, Any]) -> str:
    counts = stats.get("counts") or {}
    window = stats.get("window") or {}
    lines = [render_table(("STATUS", "JOBS"), [(s, counts.get(s, 0)) for s in counts] or [(s, 0) for s in STATUSES])]
    lines.append("")
    lines.append(f"window {window.get('since', '-')} .. {window.get('until', '-')}")
    ended = [(k, window.get(k)) for k in ("created", "completed", "failed", "cancelled", "expired") if k in window]
    if ended:
        lines.append(render_table([k.upper() for k, _ in ended], [[v for _, v in ended]]))
    rate = window.get("completion_rate")
    avg = window.get("avg_processing_ms")
    lines.append(f"completion rate    {'-' if rate is None else f'{rate * 100:.1f} %'}")
    lines.append(f"avg processing     {'-' if avg is None else f'{avg:.0f} ms'}")
    callbacks = window.get("callbacks")
    if isinstance(callbacks, dict):
        latency = callbacks.get("avg_latency_ms")
        lines.append(
            f"webhooks           {callbacks.get('delivered', 0)} delivered, {callbacks.get('failed', 0)} failed, "
            f"avg latency {'-' if latency is None else f'{latency:.0f} ms'}"
        )
    return "\n".join(lines)


def history_table(entries: Sequence[Dict[str, Any]]) -> str:
    return render_table(
        ("AT", "FROM", "STATUS", "ACTOR", "STOP_REASON"),
        [(e.get("at"), e.get("from"), e.get("status"), e.get("actor"), e.get("stop_reason")) for e in entries],
    )


# ---- arguments ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    # --url/--key/--json are accepted before or after the command (SUPPRESS: a subcommand's
    # default does not overwrite what was given before it)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="API base URL (default: $JOBS_API_URL)")
    common.add_argument("--key", default=argparse.SUPPRESS, help="API key (default: $JOBS_API_KEY)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON instead of a table")

    parser = argparse.ArgumentParser(
        prog="jobs", description="Look at and act on the jobs of the job lifecycle service.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help_text, description=help_text, parents=[common], epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def filters(p: argparse.ArgumentParser, rows: bool = True) -> None:
        p.add_argument("--type", dest="job_type", choices=JOB_TYPES, help="only this job type")
        p.add_argument("--source-id", help="only jobs whose metadata.source_id is this")
        if rows:
            p.add_argument("--limit", type=_positive_int, help=f"at most N rows (default {DEFAULT_ROWS}); pages are followed until N")
            p.add_argument("--all", action="store_true", help="every matching job, however many pages")

    p = command("list", "list jobs, newest first")
    p.add_argument("--status", choices=STATUSES, help="only jobs in this status")
    p.add_argument("--active", action="store_true", help="only created, pending and running jobs")
    p.add_argument("--order", choices=("desc", "asc"), help="desc: newest first (default); asc: oldest first")
    filters(p)

    for name, text in (
        ("get", "show one job"), ("history", "show the statuses a job went through"),
        ("cancel", "cancel a job"), ("redeliver", "send a job's terminal webhook again"),
    ):
        command(name, text).add_argument("id", metavar="ID", help="the job id (job-...)")

    p = command("stuck", "running jobs with no update for a while")
    p.add_argument("--older-than", required=True, type=_duration_arg, metavar="DURATION",
                   help="no update for this long: 90s, 15m, 1h, 2d")
    filters(p)

    p = command("stats", "job counts and the last hours' figures")
    p.add_argument("--hours", type=_positive_int, help="the window, 1 to 720 hours (default 24)")
    p.add_argument("--type", dest="job_type", choices=JOB_TYPES, help="only this job type")

    p = command("watch", "a live table of the newest jobs, redrawn until Ctrl-C")
    p.add_argument("--interval", type=_positive_float, default=2.0, metavar="SECONDS", help="seconds between redraws (default 2)")
    p.add_argument("--status", choices=STATUSES, help="only jobs in this status")
    p.add_argument("--active", action="store_true", help="only created, pending and running jobs")
    filters(p, rows=False)
    p.add_argument("--limit", type=_positive_int, default=20, help="rows shown (default 20)")
    return parser


# ---- commands -------------------------------------------------------------------------


def _rows(args: argparse.Namespace) -> Optional[int]:
    if getattr(args, "all", False):
        return None
    return args.limit or DEFAULT_ROWS


def _page_size(rows: Optional[int]) -> int:
    return 100 if rows is None else min(rows, 1000)


def _list_query(args: argparse.Namespace, rows: Optional[int]) -> Dict[str, Any]:
    return {
        "status": getattr(args, "status", None),
        "active": True if getattr(args, "active", False) else None,
        "job_type": args.job_type,
        "source_id": args.source_id,
        "order": getattr(args, "order", None),
        "limit": _page_size(rows),
    }


class Runner:
    """Runs one parsed command; output goes to ``out``."""

    def __init__(self, client: Client, args: argparse.Namespace, out: TextIO, now: Callable[[], datetime]) -> None:
        self.client = client
        self.args = args
        self.out = out
        self.now = now
        self.as_json = bool(getattr(args, "json", False))

    def emit(self, value: Any, text: Callable[[], str]) -> None:
        if self.as_json:
            self.out.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
        else:
            self.out.write(text() + "\n")

    def emit_jobs(self, jobs: List[Dict[str, Any]]) -> None:
        if not jobs and not self.as_json:
            self.out.write("no jobs\n")
            return
        now = self.now()
        self.emit(jobs, lambda: jobs_table(jobs, now))

    def run(self) -> int:
        command: Callable[[], int] = getattr(self, "cmd_" + self.args.command)
        return command()

    def cmd_list(self) -> int:
        rows = _rows(self.args)
        jobs = list(itertools.islice(self.client.list_jobs(**_list_query(self.args, rows)), rows))
        self.emit_jobs(jobs)
        return EXIT_OK

    def cmd_stuck(self) -> int:
        rows = _rows(self.args)
        query = _list_query(self.args, rows)
        query.update(status="running", updated_before=self.now() - self.args.older_than)
        jobs = list(itertools.islice(self.client.list_jobs(**query), rows))
        self.emit_jobs(jobs)
        return EXIT_OK

    def cmd_get(self) -> int:
        job = self.client.get_job(self.args.id)
        self.emit(job, lambda: job_details(job, self.now()))
        return EXIT_OK

    def cmd_history(self) -> int:
        entries = self.client.history(self.args.id)
        self.emit(entries, lambda: history_table(entries))
        return EXIT_OK

    def cmd_cancel(self) -> int:
        job = self.client.cancel_job(self.args.id)
        self.emit(job, lambda: jobs_table([job], self.now()))
        return EXIT_OK

    def cmd_redeliver(self) -> int:
        answer = self.client.redeliver(self.args.id)
        self.emit(answer, lambda: f"webhook of {self.args.id} queued for redelivery")
        return EXIT_OK

    def cmd_stats(self) -> int:
        stats = self.client.stats(hours=self.args.hours, job_type=self.args.job_type)
        self.emit(stats, lambda: stats_text(stats))
        return EXIT_OK

    def cmd_watch(self) -> int:
        tty = self.out.isatty()
        query = _list_query(self.args, self.args.limit)
        try:
            while True:
                try:
                    jobs = list(itertools.islice(self.client.list_jobs(**query), self.args.limit))
                    problem = None
                except ApiConnectionError as exc:
                    jobs, problem = [], f"cannot reach the API: {exc}"
                except ApiError as exc:
                    if exc.status_code < 500 and exc.status_code != 429:
                        raise  # a request that will never work (bad key, bad filter)
                    jobs, problem = [], f"error: {exc}"
                if self.as_json:
                    self.out.write(json.dumps(jobs, ensure_ascii=False) + "\n")
                else:
                    now = self.now()
                    if tty:
                        self.out.write("\x1b[H\x1b[2J")  # home, clear screen
                    self.out.write(f"jobs watch  {now.strftime('%H:%M:%S')} UTC  every {self.args.interval:g}s  (Ctrl-C to stop)\n\n")
                    self.out.write((problem or (jobs_table(jobs, now) if jobs else "no jobs")) + "\n")
                    if not tty:
                        self.out.write("\n")
                self.out.flush()
                _pause(self.args.interval)
        except KeyboardInterrupt:
            return EXIT_OK


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def _error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def main(argv: Optional[Sequence[str]] = None, *, out: Optional[TextIO] = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = out or sys.stdout
    try:
        client = Client(getattr(args, "url", None) or os.environ.get("JOBS_API_URL"), getattr(args, "key", None) or os.environ.get("JOBS_API_KEY"))
    except ConfigurationError as exc:
        _error(str(exc))
        return EXIT_USAGE
    try:
        with client:
            return Runner(client, args, out, lambda: datetime.now(timezone.utc)).run()
    except ApiError as exc:
        _error(f"{exc.status_code} {format_detail(exc.detail)}")
        return EXIT_API
    except ApiConnectionError as exc:
        _error(f"cannot reach the API at {client.base_url}: {exc.__cause__ or exc}")
        return EXIT_CONNECTION
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `jobs list | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
