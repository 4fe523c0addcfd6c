"""template.yaml is the single source of truth: the code must agree with it."""
import subprocess
import sys
from pathlib import Path

from jobsvc.storage import layout
from local.template import Template
from tests.helpers import load_function


def test_storage_layout_matches_the_table_in_the_template():
    """The indexes storage/layout.py queries are the table's, with the same keys, and every
    index is KEYS_ONLY (so no write that keeps an item's index keys writes an index)."""
    table = Template().table_definitions()[0]["create"]
    types = {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]}
    declared = {}
    for gsi in table["GlobalSecondaryIndexes"]:
        schema = {k["KeyType"]: k["AttributeName"] for k in gsi["KeySchema"]}
        declared[gsi["IndexName"]] = (schema["HASH"], schema["RANGE"], types[schema["RANGE"]])
        assert gsi["Projection"] == {"ProjectionType": "KEYS_ONLY"}, gsi["IndexName"]
    assert declared == layout.INDEXES
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert Template().functions()["ApiFunction"].environment["TABLE_NAME"] == "JobsTable"


def test_every_template_route_is_served_by_the_api_and_back():
    app = load_function("api").app
    served = {(route.method, route.openapi_path) for route in app._static_routes + app._dynamic_routes}
    served -= {("GET", "/v1/docs")}  # added by enable_swagger, declared in the template like the others
    declared = {(r.method, r.path) for r in Template().routes() if r.path != "$default"} - {("GET", "/v1/docs")}
    assert served == declared


def test_public_routes_are_exactly_the_unauthenticated_ones():
    api = load_function("api")
    public = {r.route_key for r in Template().routes() if r.authorizer is None}
    pages = {  # the docs page and the console, with their own files (no data, no key)
        "GET /v1/docs", "GET /v1/docs/init.js", "GET /v1/docs/swagger-ui-bundle.js", "GET /v1/docs/swagger-ui.css",
        "GET /console", "GET /console/app.js", "GET /console/app.css",
    }
    assert public == {"GET /v1/health", "GET /v1/openapi.json", "ANY $default"} | pages
    assert api.PUBLIC_ROUTES == {"GET /v1/health", "GET /v1/openapi.json", "$default"} | pages


def test_template_resources():
    t = Template()
    table = t.resources["JobsTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    glob = t.doc["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13" and glob["Architectures"] == ["arm64"]
    assert "ApiUrl" in t.doc["Outputs"]


def test_guard_rails():
    t = Template()
    resources = t.resources
    # every function logs to a group of the stack's, which keeps its logs a set time
    functions = t.of_type("AWS::Serverless::Function")
    for name, function in functions.items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert resources[group]["Type"] == "AWS::Logs::LogGroup", name
        assert resources[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    api = resources["HttpApi"]["Properties"]
    assert api["DefaultRouteSettings"] == {"ThrottlingRateLimit": {"Ref": "ApiThrottleRateLimit"},
                                           "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurstLimit"}}
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    # a receiver outage cannot take the account's concurrency: the webhook path is capped
    assert functions["CallbacksFunction"]["Properties"]["ReservedConcurrentExecutions"] == {"Ref": "WebhookFunctionConcurrency"}
    # the authorizer reads API keys, one item at a time, and nothing else
    (statement,) = functions["AuthorizerFunction"]["Properties"]["Policies"][0]["Statement"]
    assert statement["Action"] == "dynamodb:GetItem"
    assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["APIKEY#*"]}}
    # queued messages outlive a replaced stack; a failed scheduled run is kept and alarmed on
    for queue in t.of_type("AWS::SQS::Queue").values():
        assert queue["DeletionPolicy"] == "Retain" and queue["UpdateReplacePolicy"] == "Retain"
    invoke = functions["SchedulerFunction"]["Properties"]["EventInvokeConfig"]
    assert invoke["MaximumRetryAttempts"] == 2
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["SchedulerFailureQueue", "Arn"]}
    assert resources["SchedulerFailuresAlarm"]["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["SchedulerFailureQueue", "QueueName"]}
    # the API function starts from a snapshot, through the alias the API integrates with
    props = functions["ApiFunction"]["Properties"]
    assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"} and props["AutoPublishAlias"] == "live"
    # the authorizer's answer is cached per Authorization header for a set time
    identity = api["Auth"]["Authorizers"]["ApiKeyAuthorizer"]["Identity"]
    assert identity == {"Headers": ["Authorization"], "ReauthorizeEvery": {"Ref": "AuthorizerCacheSeconds"}}
    assert t.doc["Parameters"]["AuthorizerCacheSeconds"]["Default"] == 60


def test_cfn_lint_finds_nothing_in_the_template():
    """cfn-lint (CloudFormation's linter, with SAM's transform) on template.yaml: no error, no
    warning. Part of the suite so that it runs beside the other tests."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), "template.yaml"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
