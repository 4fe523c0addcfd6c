"""Read template.yaml (SAM) and resolve what the local stack needs from it."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsic functions (!Ref, !GetAtt, !Sub, ...)."""


def _intrinsic(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load(path: Path = TEMPLATE) -> dict:
    with open(path) as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


@dataclass
class Function:
    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    events: dict[str, dict]
    timeout: int
    memory: int


@dataclass(frozen=True)
class Authorizer:
    """An HTTP API Lambda authorizer (payload 2.0, simple responses)."""

    function: str  # logical id of the authorizer function
    #: identity sources ($request.header.X), lower case; a request without one of them is refused
    #: with 401 before the authorizer runs, and they are the key of the cache
    identity_headers: tuple[str, ...] = ()
    #: ReauthorizeEvery: how long an answer is cached per identity (0: not cached)
    cache_seconds: int = 0


@dataclass
class Route:
    method: str
    path: str  # API Gateway form: /v1/jobs/{job_id}
    function: str
    authorizer: Authorizer | None  # None for public routes
    regex: re.Pattern = field(init=False)

    def __post_init__(self) -> None:
        pattern = re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        self.regex = re.compile(f"^{pattern}$")

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


class Template:
    """The parts of template.yaml the local stack uses, with intrinsics resolved."""

    def __init__(self, overrides: dict[str, str] | None = None, path: Path = TEMPLATE) -> None:
        self.doc = load(path)
        self.resources: dict[str, dict] = self.doc["Resources"]
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in self.doc.get("Parameters", {}).items()
        }
        self.parameters.update(overrides or {})
        #: what the emulator created: logical id -> {"Ref": ..., "Arn": ..., other attributes}
        self.physical: dict[str, dict[str, str]] = {}

    def bind(self, logical_id: str, **values: str) -> None:
        self.physical.setdefault(logical_id, {}).update(values)

    # ---- intrinsics ---------------------------------------------------------------

    def physical_name(self, logical_id: str) -> str:
        return logical_id

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        if kind == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{logical_id}"
        if kind == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{logical_id}"
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            ref = value["Ref"]
            if ref in self.parameters:
                return self.parameters[ref]
            if ref == "AWS::Region":
                return REGION
            if ref == "AWS::StackName":
                return "local"
            return self.physical.get(ref, {}).get("Ref", self.physical_name(ref))
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            bound = self.physical.get(logical_id, {})
            if attribute in bound:
                return bound[attribute]
            return self.arn(logical_id) if attribute == "Arn" else f"{self.arn(logical_id)}/{attribute}"
        if "Fn::Sub" in value:
            text = value["Fn::Sub"]
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.resolve({"Ref": m.group(1)})), text)
        return {k: self.resolve(v) for k, v in value.items()}

    # ---- resources ----------------------------------------------------------------

    def of_type(self, kind: str) -> dict[str, dict]:
        return {name: res for name, res in self.resources.items() if res["Type"] == kind}

    def table_definitions(self) -> list[dict]:
        """CreateTable requests for every table (the template's properties, resolved)."""
        requests = []
        for logical_id, resource in self.of_type("AWS::DynamoDB::Table").items():
            props = self.resolve(resource["Properties"])
            request = {
                "TableName": self.physical_name(logical_id),
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if props.get("GlobalSecondaryIndexes"):
                request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            if props.get("StreamSpecification"):
                request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
            requests.append({"create": request, "ttl": props.get("TimeToLiveSpecification")})
        return requests

    def queue_definitions(self) -> dict[str, dict]:
        """Queue attributes by logical id (the redrive policy is resolved separately)."""
        out = {}
        for logical_id, resource in self.of_type("AWS::SQS::Queue").items():
            props = resource.get("Properties", {})
            out[logical_id] = {
                name: str(props[name])
                for name in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds")
                if name in props
            }
        return out

    def redrive_policies(self) -> dict[str, dict]:
        return {
            logical_id: self.resolve(resource["Properties"]["RedrivePolicy"])
            for logical_id, resource in self.of_type("AWS::SQS::Queue").items()
            if resource.get("Properties", {}).get("RedrivePolicy")
        }

    def event_sources(self) -> list[tuple[str, str, dict]]:
        """(function, event type, resolved properties) of every non-HTTP trigger."""
        out = []
        for function_id, function in self.functions().items():
            for event in function.events.values():
                if event["Type"] != "HttpApi":
                    out.append((function_id, event["Type"], self.resolve(event.get("Properties", {}))))
        return out

    def functions(self) -> dict[str, Function]:
        glob = self.doc.get("Globals", {}).get("Function", {})
        out = {}
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            props = resource["Properties"]
            env = dict(glob.get("Environment", {}).get("Variables", {}))
            env.update(props.get("Environment", {}).get("Variables", {}))
            out[logical_id] = Function(
                logical_id=logical_id,
                code_dir=ROOT / props["CodeUri"],
                handler=props["Handler"],
                environment={k: str(v) for k, v in self.resolve(env).items()},
                events=props.get("Events", {}),
                timeout=int(props.get("Timeout", glob.get("Timeout", 3))),
                memory=int(props.get("MemorySize", glob.get("MemorySize", 128))),
            )
        return out

    def layer_dirs(self) -> list[Path]:
        return [
            ROOT / res["Properties"]["ContentUri"]
            for res in self.of_type("AWS::Serverless::LayerVersion").values()
        ]

    def routes(self) -> list[Route]:
        """Every HttpApi route, with the authorizer API Gateway would run first."""
        authorizers = {}
        default_authorizer = {}
        for api_id, api in self.of_type("AWS::Serverless::HttpApi").items():
            auth = api.get("Properties", {}).get("Auth", {})
            default_authorizer[api_id] = auth.get("DefaultAuthorizer")
            for name, spec in auth.get("Authorizers", {}).items():
                identity = self.resolve(spec.get("Identity") or {})
                authorizers[(api_id, name)] = Authorizer(
                    function=spec["FunctionArn"]["Fn::GetAtt"][0],
                    identity_headers=tuple(h.lower() for h in identity.get("Headers") or ()),
                    cache_seconds=int(identity.get("ReauthorizeEvery") or 0),
                )
        routes = []
        for function_id, function in self.functions().items():
            for event in function.events.values():
                if event["Type"] != "HttpApi":
                    continue
                props = event["Properties"]
                api_id = props["ApiId"]["Ref"]
                name = props.get("Auth", {}).get("Authorizer", default_authorizer.get(api_id))
                authorizer = None if name in (None, "NONE") else authorizers[(api_id, name)]
                routes.append(Route(props["Method"].upper(), props["Path"], function_id, authorizer))
        return routes
