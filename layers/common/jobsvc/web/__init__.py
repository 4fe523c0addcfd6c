"""The web pages the API function serves without the authorizer: the console and the API docs.

Everything they load comes from here (no other host): the pages are files next to this module,
read on first use and kept for the life of the instance (the API function imports this module
only on these routes, so its cold start does not grow).

Each page names its assets with ``?v=<hash of the asset>``: an asset asked for with its current
hash is cached for a year (``immutable``), so a new deployment is picked up at once (the page,
served ``no-cache``, names the new hash) and an unchanged one is never fetched twice.

Swagger UI is vendored from the npm package ``swagger-ui-dist`` (version in ``SWAGGER_UI``,
files and checksums in ``swagger-ui/README.md``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
SWAGGER_UI = "5.35.0"

HTML = "text/html; charset=utf-8"
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"

#: route path -> (file under this folder, content type); the pages' own routes, nothing else
ASSETS: dict[str, tuple[str, str]] = {
    "/console": ("console.html", HTML),
    "/console/app.js": ("console.js", JS),
    "/console/app.css": ("console.css", CSS),
    "/v1/docs": ("docs.html", HTML),
    "/v1/docs/init.js": ("docs.js", JS),
    "/v1/docs/swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", JS),
    "/v1/docs/swagger-ui.css": ("swagger-ui/swagger-ui.css", CSS),
}

FOREVER = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

#: what the pages may load: their own assets and the API, on the same origin; nothing else
_CSP = {
    "console": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    # Swagger UI sets element styles from script (allowed) and draws its icons as data: SVGs
    "docs": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


@dataclass(frozen=True)
class Asset:
    body: str
    content_type: str
    version: str  # the first 16 hex digits of the SHA-256 of the body as stored


@lru_cache(maxsize=None)
def _file(name: str) -> tuple[str, str]:
    raw = (HERE / name).read_bytes()
    return raw.decode("utf-8"), hashlib.sha256(raw).hexdigest()[:16]


def _version(route: str) -> str:
    return _file(ASSETS[route][0])[1]


@lru_cache(maxsize=None)
def asset(route: str) -> Asset:
    """The asset served on ``route`` (a key of ``ASSETS``); pages get their assets' hashes filled in."""
    name, content_type = ASSETS[route]
    body, version = _file(name)
    if content_type == HTML:
        # the pages name their assets by relative URLs (so that they work under any base path)
        # followed by ?v={{version:/route}}
        for other in ASSETS:
            body = body.replace("{{version:" + other + "}}", _version(other))
    return Asset(body, content_type, version)


def headers(route: str, requested_version: str | None) -> dict[str, str]:
    """Response headers for ``route``: content type, caching, and the pages' security policy."""
    found = asset(route)
    page = found.content_type == HTML
    out = {
        "Content-Type": found.content_type,
        "Cache-Control": FOREVER if not page and requested_version == found.version else REVALIDATE,
        "X-Content-Type-Options": "nosniff",
    }
    if page:
        out["Content-Security-Policy"] = _CSP["console" if route == "/console" else "docs"]
        out["Referrer-Policy"] = "no-referrer"
        out["X-Frame-Options"] = "DENY"
    return out
