"""template.yaml is the single source of truth: the code must agree with it."""
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
