"""The console and docs pages as the API function serves them (the browser tests are in tests/e2e)."""
from __future__ import annotations

import hashlib
import json
import re

import pytest

from jobsvc import web
from tests.helpers import LambdaContext, load_function

LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


def get(path: str, query: str = "") -> dict:
    api = load_function("api")
    event = {
        "version": "2.0", "routeKey": f"GET {path}", "rawPath": path, "rawQueryString": query, "headers": {},
        "requestContext": {"http": {"method": "GET", "path": path, "sourceIp": "192.0.2.1"}, "routeKey": f"GET {path}", "stage": "$default"},
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(pair.split("=", 1) for pair in query.split("&"))
    return api.lambda_handler(event, LambdaContext())


def test_the_api_serves_exactly_the_pages_and_their_files():
    api = load_function("api")
    assert set(api.WEB_ROUTES) == set(web.ASSETS)
    for route, (name, _type) in web.ASSETS.items():
        assert (web.HERE / name).is_file(), route


@pytest.mark.parametrize("route", sorted(web.ASSETS))
def test_every_page_and_file_is_text_with_its_type_within_lambdas_limit(route):
    answer = get(route)
    assert answer["statusCode"] == 200
    assert answer["isBase64Encoded"] is False
    assert answer["headers"]["Content-Type"] == web.ASSETS[route][1]
    assert answer["headers"]["X-Content-Type-Options"] == "nosniff"
    assert len(json.dumps(answer).encode()) < LAMBDA_RESPONSE_LIMIT


def test_files_named_with_their_hash_are_cached_for_good_and_the_pages_never():
    page = get("/v1/docs")
    assert page["headers"]["Cache-Control"] == "no-cache"
    version = re.search(r'src="docs/swagger-ui-bundle\.js\?v=([0-9a-f]{16})"', page["body"]).group(1)
    body = (web.HERE / "swagger-ui/swagger-ui-bundle.js").read_bytes()
    assert version == hashlib.sha256(body).hexdigest()[:16]
    assert get("/v1/docs/swagger-ui-bundle.js", f"v={version}")["headers"]["Cache-Control"] == "public, max-age=31536000, immutable"
    # an old or missing version may be another deployment's: ask again next time
    assert get("/v1/docs/swagger-ui-bundle.js")["headers"]["Cache-Control"] == "no-cache"
    assert get("/v1/docs/swagger-ui-bundle.js", "v=0000000000000000")["headers"]["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("route", ["/console", "/v1/docs"])
def test_the_pages_load_only_relative_urls_of_this_service(route):
    answer = get(route)
    body = answer["body"]
    assert "{{" not in body, "every asset version is filled in"
    urls = re.findall(r'(?:src|href)="([^"]*)"', body)
    assert urls and all(not re.match(r"^[a-z][a-z0-9+.-]*:|^//", u) or u == "data:," for u in urls), urls
    policy = answer["headers"]["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy and "connect-src 'self'" in policy
    assert "http" not in policy and "unsafe" not in policy
    assert answer["headers"]["X-Frame-Options"] == "DENY"


def test_the_console_script_never_parses_api_data_as_html():
    script = (web.HERE / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    # and it keeps the key in the session only
    assert "localStorage" not in script and "sessionStorage" in script


def test_the_vendored_swagger_ui_is_the_recorded_release():
    readme = (web.HERE / "swagger-ui" / "README.md").read_text()
    assert f"`swagger-ui-dist` **{web.SWAGGER_UI}**" in readme
    recorded = dict(re.findall(r"^\| (\S+) \| \d+ \| ([0-9a-f]{64}) \|$", readme, re.M))
    assert set(recorded) == {"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt"}
    for name, digest in recorded.items():
        assert hashlib.sha256((web.HERE / "swagger-ui" / name).read_bytes()).hexdigest() == digest, name
    assert "/*! For license information please see swagger-ui-bundle.js.LICENSE.txt */" in (web.HERE / "swagger-ui" / "swagger-ui-bundle.js").read_text()[:200]
