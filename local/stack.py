"""The whole service on one machine: emulator + resources from template.yaml + handlers + gateway."""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field

from .emulation import Emulation
from .emulator import POLL_INTERVAL, Emulator
from .faults import FaultInjector, FaultSpec
from .gateway import Gateway
from .lambdas import LocalFunction
from .pumps import PUMPS, Pump
from .ttl import TtlReaper
from .template import REGION, ROOT, Template

#: template parameters the local stack always sets (it allows http and private callbacks).
LOCAL_PARAMETERS = {"AllowPrivateCallbacks": "true", "LogLevel": "WARNING"}


@dataclass(frozen=True)
class ApiKey:
    key: str
    organization_id: str
    user_id: str


def parse_api_keys(spec: str) -> list[ApiKey]:
    """``key:organization:user`` entries, comma separated."""
    keys = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        parts = entry.split(":")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"LOCAL_API_KEYS entry {entry!r} is not key:organization:user")
        keys.append(ApiKey(*parts))
    return keys


@dataclass
class LocalStack:
    port: int = 3000
    endpoint_url: str | None = None
    api_keys: list[ApiKey] = field(default_factory=list)
    schedule_seconds: float = 5.0
    poll_seconds: float = 0.05
    verbose: bool = False
    #: LOCAL_TRANSACTION_CONFLICT_MS, LOCAL_INDEX_LAG_MS (seconds), LOCAL_FAULTS (embedded emulator only
    #: for the first two; kills apply whatever the endpoint)
    transaction_seconds: float = 0.02
    index_lag_seconds: float = 0.0
    faults: FaultSpec = field(default_factory=FaultSpec)
    #: LOCAL_PARAMETERS: template parameters to set (over the template's defaults)
    parameters: dict[str, str] = field(default_factory=dict)
    #: LOCAL_TIMEOUT_SCALE: the functions' Timeouts multiplied by it (1: as in AWS)
    timeout_scale: float = 1.0
    #: LOCAL_RETENTION_SECONDS (None: the template's RetentionDays) and LOCAL_TTL_SECONDS
    retention_seconds: float | None = None
    ttl_seconds: float = 5.0

    def __post_init__(self) -> None:
        self.template = Template({**LOCAL_PARAMETERS, **self.parameters})
        self.injector = FaultInjector(self.faults)
        self.emulation = Emulation(transaction_seconds=self.transaction_seconds, index_lag_seconds=self.index_lag_seconds)
        self.emulator = Emulator(self.endpoint_url, self.emulation, self.injector)
        self.functions: dict[str, LocalFunction] = {}
        self.gateway: Gateway | None = None
        self._threads: list[threading.Thread] = []
        self.pumps: list[Pump] = []
        self.unfed_triggers: list[str] = []

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return f"http://127.0.0.1:{self.gateway.server_address[1]}"

    def _environment(self, endpoint: str) -> None:
        """What a Lambda's environment would hold, plus the emulator's endpoint."""
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"] = REGION
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        merged: dict[str, str] = {}
        for function in self.template.functions().values():
            for name, value in function.environment.items():
                if merged.setdefault(name, value) != value:
                    raise RuntimeError(f"functions disagree on {name}; the local stack runs them in one process")
        os.environ.update(merged)
        if self.retention_seconds:
            os.environ["RETENTION_SECONDS"] = str(int(self.retention_seconds))
        for layer in self.template.layer_dirs():
            if str(layer) not in sys.path:
                sys.path.insert(0, str(layer))

    def start(self) -> "LocalStack":
        endpoint = self.emulator.start()
        self._environment(endpoint)
        self.emulator.create_resources(self.template)

        from jobsvc.auth import create_key  # after the environment is set: it reads it once

        for key in self.api_keys:
            create_key(key.organization_id, key.user_id, name="local", key=key.key)

        specs = self.template.functions()
        paths = [str(layer) for layer in self.template.layer_dirs()] + [str(ROOT)]
        self.functions = {
            name: LocalFunction(spec, paths, faults=self.injector, timeout_scale=self.timeout_scale)
            for name, spec in specs.items()
        }
        for name, kind, props in self.template.event_sources():
            if kind not in PUMPS:
                self.unfed_triggers.append(f"{name} ({kind})")
                continue
            for _ in range(PUMPS[kind].instances):
                pump = PUMPS[kind](self.functions[name], props, self.emulator, self.poll_seconds, self.schedule_seconds)
                pump.start()
                self.pumps.append(pump)

        ttl_tables = {
            t["create"]["TableName"]: t["ttl"]["AttributeName"]
            for t in self.template.table_definitions() if (t.get("ttl") or {}).get("Enabled")
        }
        if ttl_tables:
            self.reaper = TtlReaper(self.emulator, ttl_tables, self.ttl_seconds)
            self.reaper.start()
        routes = self.template.routes()
        for name in {r.function for r in routes} | {r.authorizer.function for r in routes if r.authorizer}:
            self.functions[name].warm()
        self.gateway = Gateway(self.port, routes, self.functions, verbose=self.verbose)
        thread = threading.Thread(target=self.gateway.serve_forever, kwargs={"poll_interval": POLL_INTERVAL},
                                  name="gateway", daemon=True)
        thread.start()
        self._threads.append(thread)
        self.injector.armed = True  # set-up is over: faults from now on
        return self

    def stop(self) -> None:
        if getattr(self, "reaper", None) is not None:
            self.reaper.stop()
        for pump in self.pumps:
            pump.stop()
        # a pump may be waiting on a long invocation (a scheduler run): give them all together
        # a few seconds, not each (they are daemon threads; the functions' processes stop below)
        deadline = time.monotonic() + 5
        for pump in self.pumps:
            pump.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.gateway is not None:
            self.gateway.shutdown()
            self.gateway.server_close()
        for function in self.functions.values():
            function.stop()
        self.emulator.stop()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
