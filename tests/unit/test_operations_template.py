"""The operations part of template.yaml: the alarm topic, the alarms and the dashboard.

CloudFormation checks neither a dashboard's JSON nor the metrics an alarm or a graph names
(a typo is a graph that stays empty, an alarm that never fires), so these tests do: the
custom metrics against ``jobsvc.telemetry.CATALOG`` (and the catalog against the code that
emits them), the AWS metrics against the list below, the widgets against what CloudWatch's
dashboard body structure requires.
"""
from __future__ import annotations

import ast
import json
import re
from itertools import product
from pathlib import Path
from typing import Any, Iterator, get_args

import pytest

from jobsvc import states, telemetry
from jobsvc.schemas import JobType
from local.template import ROOT, load

DOC = load()
RESOURCES: dict[str, dict] = DOC["Resources"]
PARAMETERS: dict[str, dict] = DOC["Parameters"]
NAMESPACE = "JobLifecycle"  # Globals: POWERTOOLS_METRICS_NAMESPACE
SERVICE = "jobs"  # Globals: POWERTOOLS_SERVICE_NAME (Powertools adds it as the dimension "service")
ACTION = {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}

#: AWS metrics the dashboard and the alarms may name: (namespace, metric) -> dimension-name sets.
AWS_METRICS: dict[tuple[str, str], set[frozenset[str]]] = {
    **{("AWS/Lambda", name): {frozenset({"FunctionName"})}
       for name in ("Invocations", "Errors", "Throttles", "Duration", "IteratorAge")},
    ("AWS/Lambda", "ConcurrentExecutions"): {frozenset({"FunctionName"}), frozenset()},
    **{("AWS/SQS", name): {frozenset({"QueueName"})}
       for name in ("ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateAgeOfOldestMessage")},
    # HTTP APIs (not REST APIs: those are 4XXError/5XXError by ApiName)
    **{("AWS/ApiGateway", name): {frozenset({"ApiId", "Stage"}), frozenset({"ApiId"})}
       for name in ("4xx", "5xx", "Count", "Latency", "IntegrationLatency")},
}
#: which resources a dimension's value must come from (dummy values of `resolve_sub`).
DIMENSION_SOURCES = {
    "FunctionName": "AWS::Serverless::Function",
    "QueueName": "AWS::SQS::Queue",
    "ApiId": "AWS::Serverless::HttpApi",
}
PSEUDO = {
    "AWS::Region": "eu-west-1", "AWS::StackName": "test-stack", "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
}
GETATT = {
    "AWS::CloudWatch::Alarm": {"Arn"},
    "AWS::SQS::Queue": {"Arn", "QueueName", "QueueUrl"},
    "AWS::Serverless::Function": {"Arn"},
}
STAT = re.compile(r"^(SampleCount|Average|Sum|Minimum|Maximum|p\d{1,2}(\.\d+)?)$")
METRIC_ID = re.compile(r"^[a-z][A-Za-z0-9_]*$")
SEARCH = re.compile(r"SEARCH\('\s*\{([^}]*)\}\s*(.*?)\s*',\s*'([^']+)',\s*(\d+)\)")
WIDGET_TYPES = {"metric", "text", "log", "alarm", "explorer"}


def alarms() -> dict[str, dict]:
    return {k: r["Properties"] for k, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def defaults() -> dict[str, str]:
    return {name: str(spec.get("Default", "")) for name, spec in PARAMETERS.items()}


def failure_classes() -> set[str]:
    """Every class telemetry.failure_class can return (the strings it returns, read from its code)."""
    tree = ast.parse(Path(telemetry.__file__).read_text())
    (function,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "failure_class"]
    found = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Return):
            values = [node.value.body, node.value.orelse] if isinstance(node.value, ast.IfExp) else [node.value]
            found |= {v.value for v in values if isinstance(v, ast.Constant)}
    return found


# ---- the dashboard's body, resolved ----------------------------------------------------------

def resolve_sub(text: str, params: dict[str, str]) -> str:
    """Fn::Sub of a string: parameters take their values, resources dummy ones naming them
    ("ref:Logical", "getatt:Logical.Attribute"); anything unknown fails the test."""
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in PSEUDO:
            return PSEUDO[name]
        if name in params:
            return params[name]
        logical, _, attribute = name.partition(".")
        assert logical in RESOURCES, f"${{{name}}}: no such parameter or resource"
        if not attribute:
            return f"ref:{logical}"
        kind = RESOURCES[logical]["Type"]
        assert attribute in GETATT.get(kind, set()), f"${{{name}}}: {kind} has no attribute {attribute} here"
        return f"getatt:{logical}.{attribute}"
    return re.sub(r"\$\{([^}]*)\}", one, text)


def dashboard(params: dict[str, str] | None = None) -> dict:
    body = RESOURCES["OperationsDashboard"]["Properties"]["DashboardBody"]
    assert set(body) == {"Fn::Sub"} and isinstance(body["Fn::Sub"], str), "DashboardBody must be !Sub of one string"
    return json.loads(resolve_sub(body["Fn::Sub"], params or defaults()))


def metric_widgets() -> list[dict]:
    return [w for w in dashboard()["widgets"] if w["type"] == "metric"]


def plain_metrics(widget: dict) -> Iterator[tuple[str, str, dict[str, str], dict]]:
    """(namespace, metric, dimensions, rendering properties) of each metric line of a widget."""
    for entry in widget["properties"].get("metrics", []):
        if isinstance(entry[0], dict):
            continue
        options = entry[-1] if isinstance(entry[-1], dict) else {}
        fields = entry[:-1] if options else entry
        yield fields[0], fields[1], dict(zip(fields[2::2], fields[3::2])), options


def expressions(widget: dict) -> Iterator[dict]:
    for entry in widget["properties"].get("metrics", []):
        if isinstance(entry[0], dict):
            yield entry[0]


def searches(expression: str) -> list[tuple[str, list[str], str, str, int]]:
    """(namespace, dimension names, search term, statistic, period) of each SEARCH in an expression."""
    out = []
    for schema, term, stat, period in SEARCH.findall(expression):
        namespace, *dimensions = [part.strip() for part in schema.split(",")]
        out.append((namespace, dimensions, term, stat, int(period)))
    return out


def referenced_ids(expression: str) -> set[str]:
    """Ids a metric math expression uses: lowercase-led names outside quotes (functions are upper case)."""
    bare = re.sub(r"'[^']*'|\"[^\"]*\"", "", expression)
    return set(re.findall(r"\b[a-z][A-Za-z0-9_]*\b", bare))


def metric_problems(namespace: str, name: str, dimensions: dict[str, str | None]) -> list[str]:
    """Why a metric cannot exist (custom: the catalog; AWS: the list above); a value of None is
    not checked (a SEARCH names dimensions, not values)."""
    where = f"{namespace}/{name} {sorted(dimensions)}"
    if namespace == NAMESPACE:
        if name not in telemetry.CATALOG:
            return [f"{where}: not in telemetry.CATALOG"]
        _unit, catalog_dimensions = telemetry.CATALOG[name]
        problems = []
        if set(dimensions) != {"service", *catalog_dimensions}:
            problems.append(f"{where}: the catalog's dimensions are service + {list(catalog_dimensions)}")
        if dimensions.get("service") not in (None, SERVICE):
            problems.append(f"{where}: service is {SERVICE!r}")
        allowed = {"status": set(states.STATUSES), "job_type": set(get_args(JobType)), "class": failure_classes()}
        for key, values in allowed.items():
            if dimensions.get(key) is not None and dimensions[key] not in values:
                problems.append(f"{where}: {key}={dimensions[key]!r} is never emitted")
        return problems
    if (namespace, name) not in AWS_METRICS:
        return [f"{where}: not an AWS metric this test knows (add it to AWS_METRICS if it is real)"]
    if frozenset(dimensions) not in AWS_METRICS[(namespace, name)]:
        return [f"{where}: {namespace} publishes {name} by {[sorted(s) for s in AWS_METRICS[(namespace, name)]]}"]
    problems = []
    for key, kind in DIMENSION_SOURCES.items():
        value = dimensions.get(key)
        if value is not None:
            logical = re.sub(r"^(ref|getatt):([A-Za-z0-9]+).*$", r"\2", value)
            if logical not in RESOURCES or RESOURCES[logical]["Type"] != kind:
                problems.append(f"{where}: {key}={value!r} is not a {kind} of this stack")
    if dimensions.get("Stage") not in (None, "$default"):
        problems.append(f"{where}: the HTTP API's only stage is $default")
    return problems


def search_problems(expression: str) -> list[str]:
    problems = []
    for namespace, dimension_names, term, stat, period in searches(expression):
        names = re.findall(r'MetricName="([^"]+)"', term)
        if len(names) != 1:
            problems.append(f"{expression}: name exactly one MetricName")
            continue
        designated = dict(re.findall(r'(\w+)="([^"]*)"', term))
        designated.pop("MetricName")
        for key in designated:
            if key not in dimension_names:
                problems.append(f"{expression}: {key} is not in the schema")
        values: dict[str, str | None] = {d: designated.get(d) for d in dimension_names}
        for key, value in re.findall(r'(\w+)="([^"]*)"', term):  # each value of an OR, too
            if key in values and key != "MetricName":
                problems += metric_problems(namespace, names[0], {**values, key: value})
        problems += metric_problems(namespace, names[0], values)
        if not STAT.match(stat) or period < 60 or period % 60:
            problems.append(f"{expression}: statistic {stat!r}, period {period}")
    return problems


def all_metrics() -> list[tuple[str, str, dict[str, str | None], str]]:
    """Every metric on the dashboard, SEARCH ones with dimension values None: (ns, name, dims, title)."""
    out = []
    for widget in metric_widgets():
        title = widget["properties"].get("title", "")
        for namespace, name, dimensions, _options in plain_metrics(widget):
            out.append((namespace, name, dimensions, title))
        for expression in expressions(widget):
            for namespace, dimension_names, term, _stat, _period in searches(expression["expression"]):
                (name,) = re.findall(r'MetricName="([^"]+)"', term)
                out.append((namespace, name, {d: None for d in dimension_names}, title))
    return out


# ---- conditions -----------------------------------------------------------------------------

def evaluate_condition(value: Any, params: dict[str, str], conditions: dict[str, bool]) -> Any:
    if isinstance(value, dict):
        (key, arg), = value.items()
        if key == "Ref":
            return params[arg]
        if key == "Condition":
            return conditions[arg]
        args = [evaluate_condition(a, params, conditions) for a in arg]
        return {"Fn::Equals": lambda: args[0] == args[1], "Fn::Not": lambda: not args[0],
                "Fn::And": lambda: all(args), "Fn::Or": lambda: any(args)}[key]()
    return value


def conditions_for(params: dict[str, str]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for name, spec in DOC.get("Conditions", {}).items():
        out[name] = evaluate_condition(spec, params, out)
    return out


def instantiate(value: Any, conditions: dict[str, bool]) -> Any:
    """The template fragment as deployed under these conditions (Fn::If chosen)."""
    if isinstance(value, list):
        return [instantiate(v, conditions) for v in value if v != {"Ref": "AWS::NoValue"}]
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, yes, no = value["Fn::If"]
            return instantiate(yes if conditions[name] else no, conditions)
        return {k: instantiate(v, conditions) for k, v in value.items()}
    return value


def references(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for v in value:
            yield from references(v)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref":
                yield arg
            elif key == "Fn::GetAtt":
                yield arg[0] if isinstance(arg, list) else arg.split(".")[0]
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                yield from (m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text))
                yield from references(arg)
            else:
                yield from references(arg)


SCENARIOS = [
    pytest.param({}, id="defaults: a topic is created, no e-mail"),
    pytest.param({"AlarmEmail": "ops@example.com"}, id="created topic with an e-mail"),
    pytest.param({"AlarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:ops-alarms"}, id="existing topic"),
    pytest.param({"AlarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:ops-alarms", "AlarmEmail": "ops@example.com"},
                 id="existing topic with an e-mail"),
]


# ---- tests: the catalog ---------------------------------------------------------------------

def test_the_catalog_mirrors_the_table_in_telemetrys_docstring():
    lines = telemetry.__doc__.splitlines()
    rulers = [i for i, line in enumerate(lines) if line.startswith("=====")]
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", lines[rulers[0]])]
    table = {}
    for line in lines[rulers[1] + 1:rulers[2]]:
        if not line or line[0] == " ":
            continue  # a continuation of the row above
        metric, dimensions = (line[a:b].strip() for a, b in spans[:2])
        name, _, unit = metric.partition(" ")
        table[name] = (telemetry.MILLISECONDS if unit == "(ms)" else telemetry.COUNT,
                       () if dimensions == "(none)" else tuple(d.strip() for d in dimensions.split(",")))
    assert table == telemetry.CATALOG


def test_the_code_emits_exactly_the_catalog():
    """Every telemetry.emit(...) in the functions and the layer names a catalog metric, with
    its unit and dimensions, and every catalog metric is emitted somewhere."""
    emitted: dict[str, set] = {}
    for path in [*(ROOT / "layers/common/jobsvc").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "emit"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "telemetry"):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            assert isinstance(node.args[0], ast.Constant), f"{where}: name the metric literally"
            name = node.args[0].value
            unit_node = node.args[2] if len(node.args) > 2 else next((k.value for k in node.keywords if k.arg == "unit"), None)
            unit = telemetry.COUNT if unit_node is None else getattr(telemetry, unit_node.attr)
            dimensions = {k.arg for k in node.keywords if k.arg not in (None, "unit")}
            for spread in (k.value for k in node.keywords if k.arg is None):
                assert isinstance(spread, ast.Dict), where
                dimensions |= {key.value for key in spread.keys}
            assert name in telemetry.CATALOG, f"{where}: {name} is not in telemetry.CATALOG"
            assert (unit, dimensions) == (telemetry.CATALOG[name][0], set(telemetry.CATALOG[name][1])), where
            emitted.setdefault(name, set()).add(where)
    assert set(emitted) == set(telemetry.CATALOG)


def test_custom_metrics_are_read_where_the_functions_write_them():
    env = DOC["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    assert env["POWERTOOLS_SERVICE_NAME"] == SERVICE


# ---- tests: the alarm topic -----------------------------------------------------------------

@pytest.mark.parametrize("overrides", SCENARIOS)
def test_every_alarm_notifies_the_topic(overrides):
    """Both branches of CreateAlarmTopic: every alarm notifies (ALARM and back to OK) the
    created topic or the one named; the e-mail is subscribed to that same topic; nothing that
    is deployed refers to a resource that is not."""
    params = {**defaults(), **overrides}
    conditions = conditions_for(params)
    created = {k for k, r in RESOURCES.items() if "Condition" not in r or conditions[r["Condition"]]}
    topic = {"Ref": "AlarmTopic"} if not overrides.get("AlarmTopicArn") else {"Ref": "AlarmTopicArn"}
    assert ("AlarmTopic" in created) is (not overrides.get("AlarmTopicArn"))
    assert ("AlarmTopicKey" in created) is ("AlarmTopic" in created)
    assert ("AlarmEmailSubscription" in created) is bool(overrides.get("AlarmEmail"))
    assert alarms()
    for name, props in alarms().items():
        assert props.get("ActionsEnabled", True) is True, name
        assert props["AlarmActions"] == [ACTION] and props["OKActions"] == [ACTION], name
        deployed = instantiate(props, conditions)
        assert deployed["AlarmActions"] == deployed["OKActions"] == [topic], name
    if "AlarmEmailSubscription" in created:
        subscription = instantiate(RESOURCES["AlarmEmailSubscription"]["Properties"], conditions)
        assert subscription == {"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}, "TopicArn": topic}
    output = instantiate(DOC["Outputs"]["AlarmNotificationTopicArn"]["Value"], conditions)
    assert output == topic
    conditional = {k for k, r in RESOURCES.items() if "Condition" in r}
    for logical_id in created:
        for target in references(instantiate(RESOURCES[logical_id], conditions)):
            assert target not in conditional or target in created, f"{logical_id} needs {target}, not deployed"
    for name, spec in DOC["Outputs"].items():
        if "Condition" not in spec or conditions[spec["Condition"]]:
            for target in references(instantiate(spec, conditions)):
                assert target not in conditional or target in created, f"output {name} needs {target}"


def test_the_created_topic_is_encrypted_with_a_key_cloudwatch_may_use():
    """An encrypted topic takes alarm notifications only if its key lets CloudWatch use it:
    the AWS managed key (alias/aws/sns) does not, so the topic has a key of its own."""
    topic = RESOURCES["AlarmTopic"]
    key = RESOURCES["AlarmTopicKey"]
    assert topic["Type"] == "AWS::SNS::Topic" and key["Type"] == "AWS::KMS::Key"
    assert topic["Condition"] == key["Condition"] == "CreateAlarmTopic"
    assert topic["Properties"]["KmsMasterKeyId"] in ({"Ref": "AlarmTopicKey"}, {"Fn::GetAtt": ["AlarmTopicKey", "Arn"]})
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])
    assert "Condition" not in cloudwatch[0]
    root = [s for s in statements if s["Effect"] == "Allow" and "AWS" in s["Principal"] and s["Action"] in ("kms:*", ["kms:*"])]
    assert root, "the account must keep the key manageable"
    assert key["Properties"].get("EnableKeyRotation") is True


# ---- tests: the alarms ----------------------------------------------------------------------

def alarm_metrics(props: dict) -> dict[str, tuple[str, str, dict, str, Any]]:
    """id -> (namespace, metric, dimensions, statistic, period) of an alarm's metrics; a single
    metric alarm has the id "m"."""
    if "MetricName" in props:
        dims = {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
        return {"m": (props["Namespace"], props["MetricName"], dims, props["Statistic"], props["Period"])}
    out = {}
    for query in props["Metrics"]:
        if "MetricStat" in query:
            stat = query["MetricStat"]
            metric = stat["Metric"]
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            out[query["Id"]] = (metric["Namespace"], metric["MetricName"], dims, stat["Stat"], stat["Period"])
    return out


def alarm_expression(props: dict) -> str | None:
    returned = [q for q in props.get("Metrics", []) if q.get("ReturnData", True)]
    return returned[0].get("Expression") if returned else None


def compute(expression: str, values: dict[str, float]) -> float:
    """The subset of metric math the alarms use: arithmetic and a top-level IF(c, a, b)."""
    match = re.fullmatch(r"IF\((.+?),\s*(.+),\s*([^,]+)\)", expression)
    if match:
        condition, yes, no = match.groups()
        expression = f"(({yes}) if ({condition}) else ({no}))"
    assert not re.search(r"[A-Z]{2,}\(", expression), f"compute() does not know {expression}"
    return eval(expression, {"__builtins__": {}}, values)  # noqa: S307 - the template's own expression


def literal(value: Any) -> Any:
    """A dimension value as deployed, for the comparisons below (GetAtt of a queue name)."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return "getatt:" + (".".join(target) if isinstance(target, list) else target)
    if isinstance(value, dict) and "Ref" in value:
        return "ref:" + value["Ref"]
    return value


def test_every_alarm_is_well_formed():
    """Named metrics that exist, valid statistics and periods, metric math CloudWatch accepts
    in an alarm (at most 10 metrics of one period, one returned series, no SEARCH), and a
    description saying what to look at."""
    for name, props in alarms().items():
        description = props.get("AlarmDescription", "")
        assert 40 <= len(description) <= 1024, name
        for namespace, metric, dims, stat, period in alarm_metrics(props).values():
            values = {k: literal(v) for k, v in dims.items()}
            assert metric_problems(namespace, metric, values) == [], name
            assert STAT.match(stat), name
            period_value = int(defaults()[period["Ref"]]) if isinstance(period, dict) else period
            assert period_value >= 60 and period_value % 60 == 0, name
        if "Metrics" in props:
            queries = props["Metrics"]
            ids = [q["Id"] for q in queries]
            assert len(ids) == len(set(ids)) and all(METRIC_ID.match(i) for i in ids), name
            assert [q.get("ReturnData", True) for q in queries].count(True) == 1, name
            assert len(alarm_metrics(props)) <= 10, name
            assert len({str(m[4]) for m in alarm_metrics(props).values()}) == 1, f"{name}: one period for all"
            for query in queries:
                if "Expression" in query:
                    assert "SEARCH" not in query["Expression"], f"{name}: alarms cannot use SEARCH"
                    assert referenced_ids(query["Expression"]) <= set(ids) - {query["Id"]}, name
        assert props["ComparisonOperator"] in {"GreaterThanThreshold", "LessThanThreshold",
                                               "GreaterThanOrEqualToThreshold", "LessThanOrEqualToThreshold"}
        assert props.get("TreatMissingData") in {"breaching", "notBreaching"}, name
        assert props.get("DatapointsToAlarm", 1) <= props["EvaluationPeriods"], name


def test_the_alarms_the_issue_lists():
    a = alarms()
    for alarm, queue in (("WebhookDeadLettersAlarm", "WebhookDeadLetterQueue"), ("StreamFailuresAlarm", "StreamFailureQueue")):
        (metric,) = alarm_metrics(a[alarm]).values()
        assert metric[:3] == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": {"Fn::GetAtt": [queue, "QueueName"]}})
        assert (a[alarm]["Threshold"], a[alarm]["ComparisonOperator"]) == (0, "GreaterThanThreshold")

    for alarm, function in (("CallbacksIteratorAgeAlarm", "CallbacksFunction"), ("ProjectorIteratorAgeAlarm", "ProjectorFunction")):
        metrics = alarm_metrics(a[alarm])
        (age_id, age), = metrics.items()
        assert age[:4] == ("AWS/Lambda", "IteratorAge", {"FunctionName": {"Ref": function}}, "Maximum")
        assert a[alarm]["Threshold"] == {"Ref": "IteratorAgeAlarmSeconds"}
        assert a[alarm]["ComparisonOperator"] == "GreaterThanThreshold"
        # IteratorAge is in milliseconds, the threshold in seconds
        assert compute(alarm_expression(a[alarm]), {age_id: 301_000}) == 301
    assert defaults()["IteratorAgeAlarmSeconds"] == "300"

    (errors,) = alarm_metrics(a["SchedulerErrorsAlarm"]).values()
    assert errors[:4] == ("AWS/Lambda", "Errors", {"FunctionName": {"Ref": "SchedulerFunction"}}, "Sum")
    assert (a["SchedulerErrorsAlarm"]["Threshold"], a["SchedulerErrorsAlarm"]["ComparisonOperator"]) == (0, "GreaterThanThreshold")

    missed = a["SchedulerMissedRunsAlarm"]
    (runs,) = alarm_metrics(missed).values()
    assert runs[:4] == ("AWS/Lambda", "Invocations", {"FunctionName": {"Ref": "SchedulerFunction"}}, "Sum")
    assert (missed["Threshold"], missed["ComparisonOperator"], missed["TreatMissingData"]) == (1, "LessThanThreshold", "breaching")
    assert int(defaults()[runs[4]["Ref"]]) * missed["EvaluationPeriods"] == 600  # no run in 10 minutes

    api = a["ApiErrorRateAlarm"]
    metrics = alarm_metrics(api)
    by_name = {m[1]: i for i, m in metrics.items()}
    assert set(by_name) == {"5xx", "Count"}
    for metric in metrics.values():
        assert metric[0] == "AWS/ApiGateway" and metric[2] == {"ApiId": {"Ref": "HttpApi"}, "Stage": "$default"} and metric[3] == "Sum"
    assert api["Threshold"] == {"Ref": "ApiErrorRateAlarmPercent"} and defaults()["ApiErrorRateAlarmPercent"] == "5"
    rate = alarm_expression(api)
    assert compute(rate, {by_name["5xx"]: 3, by_name["Count"]: 50}) == 6
    assert compute(rate, {by_name["5xx"]: 0, by_name["Count"]: 0}) == 0

    webhooks = a["WebhookFailureRateAlarm"]
    metrics = alarm_metrics(webhooks)
    classes = {m[2]["class"]: i for i, m in metrics.items() if m[1] == "WebhookFailures"}
    assert set(classes) == failure_classes(), "every failure class counts"
    (attempts,) = [i for i, m in metrics.items() if m[1] == "WebhookAttempts"]
    assert all(m[0] == NAMESPACE and m[2]["service"] == SERVICE and m[3] == "Sum" for m in metrics.values())
    assert webhooks["Threshold"] == {"Ref": "WebhookFailureRateAlarmPercent"} and defaults()["WebhookFailureRateAlarmPercent"] == "20"
    rate = alarm_expression(webhooks)
    for failing in classes.values():
        assert compute(rate, {**{i: 0 for i in classes.values()}, failing: 5, attempts: 20}) == 25
    assert compute(rate, {**{i: 1 for i in classes.values()}, attempts: 70}) == 10
    assert compute(rate, {**{i: 0 for i in classes.values()}, attempts: 0}) == 0


# ---- tests: the dashboard -------------------------------------------------------------------

def test_the_dashboard_is_valid_json_with_the_fields_cloudwatch_requires():
    params = {**defaults(), "WebhookFailureRateAlarmPercent": "35", "IteratorAgeAlarmSeconds": "120"}
    body = dashboard(params)
    assert isinstance(body["widgets"], list) and 0 < len(body["widgets"]) <= 500
    assert set(body) <= {"widgets", "variables", "start", "end", "periodOverride"}
    cells: dict[tuple[int, int], int] = {}
    for n, widget in enumerate(body["widgets"]):
        where = f"widget {n} ({widget.get('properties', {}).get('title', widget.get('type'))})"
        assert widget["type"] in WIDGET_TYPES, where
        assert isinstance(widget["properties"], dict), where
        assert ("x" in widget) == ("y" in widget), where
        x, y, width, height = widget.get("x", 0), widget.get("y", 0), widget.get("width", 6), widget.get("height", 6)
        assert all(isinstance(v, int) for v in (x, y, width, height)), where
        assert 0 <= x <= 23 and y >= 0 and 1 <= width <= 24 and x + width <= 24 and 1 <= height <= 1000, where
        for cell in product(range(x, x + width), range(y, y + height)):
            assert cell not in cells, f"{where} overlaps widget {cells[cell]}"
            cells[cell] = n
        props = widget["properties"]
        if widget["type"] == "text":
            assert isinstance(props["markdown"], str) and props["markdown"], where
        elif widget["type"] == "alarm":
            assert 1 <= len(props["alarms"]) <= 100 and all(isinstance(a, str) for a in props["alarms"]), where
        elif widget["type"] == "metric":
            assert props["region"] == PSEUDO["AWS::Region"], where
            assert isinstance(props["metrics"], list) and 1 <= len(props["metrics"]) <= 500, where
            assert STAT.match(props.get("stat", "Average")), where
            assert props.get("period", 300) >= 60 and props.get("period", 300) % 60 == 0, where
            ids = []
            for entry in props["metrics"]:
                assert isinstance(entry, list) and entry, where
                if isinstance(entry[0], dict):
                    assert len(entry) == 1 and isinstance(entry[0]["expression"], str), where
                    assert set(entry[0]) <= {"expression", "label", "id", "visible", "period", "stat", "yAxis", "color"}, where
                    assert "id" in entry[0], f"{where}: name every expression"
                    ids.append(entry[0]["id"])
                else:
                    options = entry[-1] if isinstance(entry[-1], dict) else {}
                    fields = entry[:-1] if options else entry
                    assert len(fields) >= 2 and len(fields) % 2 == 0, f"{where}: {entry}"
                    assert all(isinstance(f, str) and f and f != "." for f in fields), f"{where}: {entry}"
                    assert set(options) <= {"id", "label", "visible", "stat", "period", "yAxis", "color"}, where
                    if "id" in options:
                        ids.append(options["id"])
                    assert STAT.match(options.get("stat", "Average")), where
                    assert options.get("period", 60) % 60 == 0, where
            assert len(ids) == len(set(ids)) and all(METRIC_ID.match(i) for i in ids), f"{where}: ids {ids}"
            for expression in expressions(widget):
                assert referenced_ids(expression["expression"]) <= set(ids) - {expression["id"]}, \
                    f"{where}: {expression['expression']} uses an id the widget does not define"
                if "SEARCH" in expression["expression"]:
                    found = searches(expression["expression"])
                    assert len(found) == expression["expression"].count("SEARCH("), f"{where}: a SEARCH this test cannot read"
                    assert all(len(term) <= 1024 for _ns, _dims, term, _stat, _period in found), where
            for horizontal in props.get("annotations", {}).get("horizontal", []):
                assert isinstance(horizontal["value"], (int, float)), where
    # the thresholds drawn on the graphs follow the parameters
    drawn = {(w["properties"]["title"], a["label"]): a["value"] for w in body["widgets"] if w["type"] == "metric"
             for a in w["properties"].get("annotations", {}).get("horizontal", [])}
    assert drawn == {
        ("Webhook failure rate (%): failed / attempts", "alarm"): 35,
        ("Table stream: iterator age (s)", "alarm"): 120,
        ("API: error rates (%)", "5xx alarm"): 5,
        ("Lambda: concurrent executions (max)", "callbacks reserved"): 50,
        ("Scheduler: run duration (ms)", "timeout"): RESOURCES["SchedulerFunction"]["Properties"]["Timeout"] * 1000,
    }


def test_the_dashboard_names_only_metrics_that_exist():
    problems = []
    for widget in metric_widgets():
        for namespace, name, dimensions, _options in plain_metrics(widget):
            problems += metric_problems(namespace, name, dimensions)
        for expression in expressions(widget):
            problems += search_problems(expression["expression"])
    assert problems == []


def test_the_dashboard_shows_what_the_issue_asks():
    shown = all_metrics()
    names = {(ns, name) for ns, name, _dims, _title in shown}
    # every custom metric, and the AWS metrics of the queues, the stream, the API and the functions
    assert {(NAMESPACE, name) for name in telemetry.CATALOG} <= names
    assert set(AWS_METRICS) <= names
    functions = {f"ref:{k}" for k, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}
    queues = {f"getatt:{k}.QueueName" for k, r in RESOURCES.items() if r["Type"] == "AWS::SQS::Queue"}
    by_metric: dict[tuple[str, str], set] = {}
    for ns, name, dims, _title in shown:
        by_metric.setdefault((ns, name), set()).update(v for v in dims.values() if v)
    for metric in ("Errors", "Throttles", "ConcurrentExecutions"):
        assert functions <= by_metric[("AWS/Lambda", metric)], metric
    assert by_metric[("AWS/Lambda", "IteratorAge")] == {"ref:CallbacksFunction", "ref:ProjectorFunction"}
    assert {"ref:SchedulerFunction"} <= by_metric[("AWS/Lambda", "Duration")] & by_metric[("AWS/Lambda", "Invocations")]
    for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible", "ApproximateAgeOfOldestMessage"):
        assert by_metric[("AWS/SQS", metric)] == queues, metric
    latency = {o.get("stat") for w in metric_widgets() for ns, name, _d, o in plain_metrics(w) if name == "Latency"}
    assert {"p50", "p95", "p99"} <= latency
    webhook_latency = {o.get("stat") for w in metric_widgets() for ns, name, _d, o in plain_metrics(w) if name == "WebhookLatency"}
    assert {"p50", "p95"} <= webhook_latency
    # every alarm of the template is on the alarm widget
    (alarm_widget,) = [w for w in dashboard()["widgets"] if w["type"] == "alarm"]
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(f"getatt:{name}.Arn" for name in alarms())


def test_the_completion_rate_is_completed_over_every_terminal_status_of_every_job_type():
    (widget,) = [w for w in metric_widgets() if w["properties"]["title"].startswith("Completion rate")]
    lines = {(d["status"], d["job_type"]): o["id"] for ns, name, d, o in plain_metrics(widget) if name == "Transitions"}
    assert set(lines) == set(product(states.TERMINAL, get_args(JobType)))
    by_id = {e["id"]: e["expression"] for e in expressions(widget)}
    for job_type in get_args(JobType):
        ids = {status: lines[(status, job_type)] for status in states.TERMINAL}
        (rate,) = [e for e in by_id.values() if "SEARCH" not in e and referenced_ids(e) == set(ids.values())]
        values = {ids[s]: v for s, v in zip(sorted(states.TERMINAL), (6, 1, 2, 1))}  # cancelled, completed, expired, failed
        assert compute(rate, values) == 10  # 1 completed of 10 ended
    overall = [e for e in by_id.values() if "SEARCH" in e]
    ended = [e for e in overall if "OR" in e]
    assert len(overall) == 2 and len(ended) == 1
    assert set(re.findall(r'status="(\w+)"', ended[0])) == states.TERMINAL
    (done,) = [e for e in overall if e not in ended]
    assert re.findall(r'status="(\w+)"', done) == ["completed"]


# ---- tests: parameters and outputs ----------------------------------------------------------

def test_every_parameter_has_a_default_that_deploys():
    for name, spec in PARAMETERS.items():
        assert "Default" in spec, f"{name}: a deploy without overrides must work"
        value = str(spec["Default"])
        if "AllowedValues" in spec:
            assert value in [str(v) for v in spec["AllowedValues"]], name
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), name
        if spec["Type"] == "Number":
            number = float(value)
            assert spec.get("MinValue", number) <= number <= spec.get("MaxValue", number), name
        assert spec.get("MinLength", 0) <= len(value) <= spec.get("MaxLength", len(value)), name
    conditions = conditions_for(defaults())
    assert conditions == {"CreateAlarmTopic": True, "HasAlarmEmail": False}


@pytest.mark.parametrize(("parameter", "good", "bad"), [
    ("AlarmTopicArn", ["arn:aws:sns:eu-west-1:123456789012:ops-alarms", "arn:aws-us-gov:sns:us-gov-west-1:123456789012:a.fifo"],
     ["ops-alarms", "arn:aws:sqs:eu-west-1:123456789012:q", "arn:aws:sns:eu-west-1:1234:t"]),
    ("AlarmEmail", ["ops@example.com", "a.b+alarms@ops.example.org"], ["ops", "ops@example", "a b@example.com"]),
])
def test_the_routing_parameters_take_what_they_should(parameter, good, bad):
    pattern = PARAMETERS[parameter]["AllowedPattern"]
    assert all(re.fullmatch(pattern, v) for v in good)
    assert not any(re.fullmatch(pattern, v) for v in bad)


def test_the_outputs_name_the_dashboard_and_the_topic():
    url = DOC["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert resolve_sub(url, defaults()) == (
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
        "#dashboards/dashboard/ref:OperationsDashboard")
    assert DOC["Outputs"]["AlarmNotificationTopicArn"]["Value"] == ACTION


# ---- tests: the README ----------------------------------------------------------------------

def test_the_readme_explains_every_alarm_and_threshold():
    readme = (ROOT / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", readme, flags=re.M)
    assert headings.index("Operating it") == headings.index("The schedule and the timeout sweep") + 1
    section = readme.split("\n## Operating it\n", 1)[1].split("\n## ", 1)[0]
    for name in [*alarms(), "AlarmTopicArn", "AlarmEmail", "IteratorAgeAlarmSeconds", "ApiErrorRateAlarmPercent",
                 "WebhookFailureRateAlarmPercent", "SchedulerMissedRunAlarmSeconds", "DashboardUrl"]:
        assert name in section, name
    assert not re.search(r"https?://|\]\(\.\./|\]\(/", section), "the README stands alone"
