"""The documentation against the code: docs/api.md against the OpenAPI document the API
function serves, docs/operations.md against template.yaml, the metrics catalog and the local
stack's settings, and every page's links against the repository.

How docs/api.md is written so that it can be checked:

- every operation has a heading ``#### `METHOD /v1/path`: what it does``; the pages that are
  not operations (``/v1/openapi.json``, ``/v1/docs``, ``/console``) may have one too;
- in each operation's section, one paragraph starts ``**Answers:**`` and names, as
  `` `NNN` ``, exactly the statuses the operation declares; each success that has a model
  links to the heading of that model's table; each error status is a row of the shared
  table under the heading "Errors";
- the table of a model's fields (or a body's members) follows a comment
  ``<!-- schema: Name -->`` (``<!-- schema: Batch extends Job -->``: the fields beyond
  Job's); its first column lists every field, nested objects flattened (``counts.created``,
  ``requests[].custom_id``), and a body member's row states its limits and default;
- a query parameter is a row of a table in its operation's section, with its limits and
  default.
"""
from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import pytest

from jobsvc import states, telemetry
from local import template
from tests.helpers import LambdaContext, event, load_function

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
API_MD = ROOT / "docs" / "api.md"
OPERATIONS_MD = ROOT / "docs" / "operations.md"
WEBHOOKS_MD = ROOT / "docs" / "webhooks.md"
#: every page whose links and paths are checked
PAGES = [README, ROOT / "client" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: models the issue names: their every field must be in the reference
REQUIRED_SCHEMAS = ("Job", "Batch", "Message", "CallbackAttempt", "HistoryEntry", "Stats")
#: the OpenAPI document's own validation model (Powertools), never answered by the service
IGNORED_SCHEMAS = {"ResponseValidationError"}


# ---- the OpenAPI document, as the API function serves it --------------------------------


@lru_cache(maxsize=1)
def openapi() -> dict:
    api = load_function("api")
    ev = event("api_health")
    ev["routeKey"] = ev["requestContext"]["routeKey"] = "GET /v1/openapi.json"
    ev["rawPath"] = ev["requestContext"]["http"]["path"] = "/v1/openapi.json"
    response = api.lambda_handler(ev, LambdaContext())
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])


def operations() -> dict[tuple[str, str], dict]:
    return {
        (method.upper(), path): op
        for path, ops in openapi()["paths"].items() for method, op in ops.items() if method.upper() in METHODS
    }


def schemas() -> dict[str, dict]:
    return openapi()["components"]["schemas"]


def page_routes() -> set[tuple[str, str]]:
    """The public GET routes that are pages, not operations: the docs page, the console, the
    OpenAPI document itself (functions/api/app.py)."""
    api = load_function("api")
    return {("GET", path) for path in api.WEB_ROUTES} | {("GET", "/v1/openapi.json")}


def ref_name(schema: dict | None) -> str | None:
    """The component a schema refers to (directly, as an array's items, or in an anyOf)."""
    if not schema:
        return None
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[1]
    if schema.get("type") == "array":
        return ref_name(schema.get("items"))
    for option in schema.get("anyOf", []):
        name = ref_name(option)
        if name:
            return name
    return None


def variants(schema: dict) -> list[dict]:
    """A property's schema and the options of its anyOf (Optional[...] is anyOf with null)."""
    return [schema, *schema.get("anyOf", [])]


# ---- Markdown, as GitHub renders it ---------------------------------------------------------


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def without_code_blocks(text: str) -> str:
    """The text with fenced code blocks blanked (lines kept, so positions stay comparable)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line)
    return "\n".join(out)


def code_blocks(text: str) -> list[str]:
    blocks, current = [], None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def headings(text: str) -> list[tuple[int, str, int]]:
    """(level, title, line index) of every heading outside code blocks."""
    out = []
    for i, line in enumerate(without_code_blocks(text).splitlines()):
        match = HEADING.match(line)
        if match:
            out.append((len(match.group(1)), match.group(2), i))
    return out


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link in a heading: its text
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(text: str) -> list[str]:
    """Every heading's anchor, with GitHub's -1, -2 ... for repeated titles."""
    seen: dict[str, int] = {}
    out = []
    for _, title, _ in headings(text):
        base = slug(title)
        n = seen.get(base, 0)
        out.append(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


OPERATION_HEADING = re.compile(r"^`(" + "|".join(METHODS) + r") (/[^`\s]*)`")


def operation_sections(text: str) -> dict[tuple[str, str], str]:
    """The text under each operation heading, up to the next heading of its level or above."""
    lines = text.splitlines()
    found = headings(text)
    out: dict[tuple[str, str], str] = {}
    for n, (level, title, start) in enumerate(found):
        match = OPERATION_HEADING.match(title)
        if not match:
            continue
        end = next((line for lvl, _, line in found[n + 1:] if lvl <= level), len(lines))
        key = (match.group(1), match.group(2))
        assert key not in out, f"{key} has two headings"
        out[key] = "\n".join(lines[start + 1:end])
    return out


def heading_above(text: str, position: int) -> str:
    """The anchor of the last heading before a character position."""
    line = text.count("\n", 0, position)
    names = anchors(text)
    above = [name for name, (_, _, at) in zip(names, headings(text)) if at <= line]
    assert above, f"nothing above line {line}"
    return above[-1]


MARKER = re.compile(r"<!--\s*schema:\s*(\w+)(?:\s+extends\s+(\w+))?\s*-->")


def first_cell(row: str) -> str | None:
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    match = re.fullmatch(r"`([^`]+)`", cells[0]) if cells else None
    return match.group(1) if match else None


def table_rows(lines: list[str]) -> dict[str, str]:
    """The rows of the table at the start of ``lines``, by the name in their first cell."""
    rows: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            if rows:
                break
            continue
        if not line.lstrip().startswith("|"):
            break
        name = first_cell(line)
        if name is not None:
            assert name not in rows, f"{name} twice in one table"
            rows[name] = line
    return rows


def schema_tables(text: str) -> dict[str, dict[str, Any]]:
    """Each ``<!-- schema: Name -->`` table: its rows, what it extends, and its heading's anchor."""
    out: dict[str, dict[str, Any]] = {}
    for match in MARKER.finditer(text):
        name = match.group(1)
        assert name not in out, f"two tables for {name}"
        after = text[match.end():].splitlines()[1:]
        out[name] = {"rows": table_rows(after), "extends": match.group(2), "anchor": heading_above(text, match.start())}
        assert out[name]["rows"], f"no table after the marker of {name}"
    return out


def tables_in(section: str) -> dict[str, str]:
    """Every row, of every table in a section, named by its first cell."""
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if line.lstrip().startswith("|"):
            name = first_cell(line)
            if name is not None:
                rows.setdefault(name, line)
    return rows


def answers(section: str) -> str:
    """The answers an operation lists: from ``**Answers:**`` to the link to the errors table
    (what follows it in the paragraph explains, and is not counted)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", without_code_blocks(section)) if "**Answers:**" in p]
    assert len(paragraphs) == 1, f"{len(paragraphs)} paragraphs of answers"
    text = paragraphs[0][paragraphs[0].index("**Answers:**"):]
    end = text.find("](#errors)")
    return text if end < 0 else text[:end + len("](#errors)")]


def statuses_in(text: str) -> set[str]:
    return set(re.findall(r"`(\d{3})`", text))


def expected_fields(name: str, documented: set[str], prefix: str = "") -> set[str]:
    """Every field of a schema, nested objects that have no table of their own flattened."""
    fields: set[str] = set()
    for prop, schema in schemas()[name].get("properties", {}).items():
        field = prefix + prop
        fields.add(field)
        inner = ref_name(schema)
        if inner and inner not in documented and schemas()[inner].get("properties"):
            is_array = any(v.get("type") == "array" for v in variants(schema))
            fields |= expected_fields(inner, documented, field + ("[]." if is_array else "."))
    return fields


def subschema(name: str, field: str) -> dict:
    """The schema of a (possibly flattened) field of a component."""
    schema: dict = {"$ref": f"#/components/schemas/{name}"}
    for part in re.split(r"\[\]\.|\.", field):
        schema = schemas()[ref_name(schema)]["properties"][part]  # type: ignore[index]
    return schema


def number_forms(value: float) -> set[str]:
    """How a limit may be written: 1000, 1,000, and 2^63 for the largest integers."""
    forms = set()
    if float(value).is_integer() and abs(value) < 2**53:
        forms |= {str(int(value)), f"{int(value):,}"}
    else:
        forms.add(repr(value))
    if abs(value) >= 2**32:
        power = round(math.log2(abs(value)))
        if math.isclose(abs(value), 2**power, rel_tol=1e-9):
            forms.add(f"2^{power}")
    return forms


def limits(schema: dict) -> list[tuple[str, set[str]]]:
    """What a row must state about a member or parameter: each bound and the default."""
    out = []
    for option in variants(schema):
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "maxLength", "minLength"):
            if key in option:
                out.append((key, number_forms(option[key])))
        if "pattern" in option:
            for low, high in re.findall(r"\{(\d+),(\d+)\}", option["pattern"]):
                out.append(("pattern", {low}))
                out.append(("pattern", number_forms(float(high))))
    default = schema.get("default")
    if default is not None:
        text = json.dumps(default)
        out.append(("default", {text, text.strip('"')}))
    return out


def mentions(row: str, forms: set[str]) -> bool:
    return any(re.search(r"(?<![\w.^])" + re.escape(form) + r"(?![\w^])", row) for form in forms)


# ---- docs/api.md against the OpenAPI document ----------------------------------------------


def test_every_operation_of_the_document_is_in_the_reference():
    documented = set(operation_sections(read(API_MD)))
    missing = sorted(set(operations()) - documented)
    assert not missing, f"operations without a heading in docs/api.md: {missing}"


def test_every_route_the_reference_documents_exists():
    extra = sorted(set(operation_sections(read(API_MD))) - set(operations()) - page_routes())
    assert not extra, f"docs/api.md documents routes the API does not have: {extra}"


def normalize(path: str) -> str:
    """A path as the document writes it: placeholders and sample ids become ``{job_id}``."""
    path = path.split("?", 1)[0].rstrip(".,;:")
    path = re.sub(r"\{[^}/]*\}", "{job_id}", path)
    return re.sub(r"job-[0-9a-f][0-9a-f.-]*(?:\.\.\.)?", "{job_id}", path)


def mentioned_routes(text: str) -> Iterator[tuple[str, str, str]]:
    """(method or "", path, as written) of every /v1 route a page names: `METHOD /v1/...`,
    `/v1/...` in code, and the URLs of curl commands."""
    for match in re.finditer(r"\b(" + "|".join(METHODS) + r") (/v1/[^\s`'\"),]*)", text):
        yield match.group(1), normalize(match.group(2)), match.group(0)
    for match in re.finditer(r"`(/v1/[^`\s]*)`", text):
        yield "", normalize(match.group(1)), match.group(0)
    for match in re.finditer(r"\$API(/v1/[^\s\"']*)", text):
        yield "", normalize(match.group(1)), match.group(0)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_page_names_exists(page):
    known = set(operations()) | page_routes()
    paths = {path for _, path in known}
    wrong = []
    for method, path, written in mentioned_routes(read(page)):
        if (method and (method, path) not in known) or (not method and path not in paths):
            wrong.append(written)
    assert not wrong, f"{page.name} names routes the API does not have: {wrong}"


def test_every_operation_lists_exactly_the_statuses_it_declares():
    sections = operation_sections(read(API_MD))
    wrong = {}
    for key, op in operations().items():
        declared = set(op["responses"])
        written = statuses_in(answers(sections[key]))
        if written != declared:
            wrong[key] = {"undocumented": sorted(declared - written), "not declared": sorted(written - declared)}
    assert not wrong, wrong


def test_every_error_status_is_described_in_the_shared_table():
    text = read(API_MD)
    names = anchors(text)
    assert "errors" in names, "docs/api.md has no Errors section"
    level, _, start = headings(text)[names.index("errors")]
    lines = text.splitlines()
    after = [line for line in lines[start + 1:]]
    end = next((i for i, line in enumerate(after) if (m := HEADING.match(line)) and len(m.group(1)) <= level), len(after))
    shared = {first_cell(line) for line in after[:end] if line.lstrip().startswith("|")}
    sections = operation_sections(text)
    missing = {}
    for key, op in operations().items():
        errors = {code for code in op["responses"] if int(code) >= 400}
        if errors - shared:
            missing[key] = sorted(errors - shared)
        if errors:
            assert "](#errors)" in answers(sections[key]), f"{key}: its answers do not point to the errors table"
    assert not missing, f"error statuses without a row in the errors table: {missing}"


def test_every_success_links_its_model():
    text = read(API_MD)
    tables = schema_tables(text)
    sections = operation_sections(text)
    wrong = []
    for key, op in operations().items():
        for code, response in op["responses"].items():
            if int(code) >= 400:
                continue
            model = ref_name(response.get("content", {}).get("application/json", {}).get("schema"))
            if model is None:
                continue
            assert model in tables, f"{key} {code}: no table of {model}"
            if f"](#{tables[model]['anchor']})" not in answers(sections[key]):
                wrong.append((key, code, model, tables[model]["anchor"]))
    assert not wrong, f"answers that do not link their model's table: {wrong}"


def test_every_request_body_is_documented_with_its_operation():
    text = read(API_MD)
    tables = schema_tables(text)
    sections = operation_sections(text)
    for key, op in operations().items():
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        model = ref_name(body)
        if model is None:
            continue
        assert model in tables, f"{key}: no table of its body {model}"
        section = sections[key]
        assert f"<!-- schema: {model}" in section or f"](#{tables[model]['anchor']})" in section, (
            f"{key}: its section neither holds nor links the table of {model}")


def test_every_field_of_every_model_is_in_the_reference():
    tables = schema_tables(read(API_MD))
    assert set(REQUIRED_SCHEMAS) <= set(tables), f"missing tables: {sorted(set(REQUIRED_SCHEMAS) - set(tables))}"
    referenced = set()
    for op in operations().values():
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        referenced.add(ref_name(body))
        for response in op["responses"].values():
            referenced.add(ref_name(response.get("content", {}).get("application/json", {}).get("schema")))
    referenced -= {None} | IGNORED_SCHEMAS
    assert referenced <= set(tables), f"models with no table: {sorted(referenced - set(tables))}"
    unknown = set(tables) - set(schemas())
    assert not unknown, f"tables of models the document does not have: {sorted(unknown)}"
    wrong = {}
    for name, table in tables.items():
        expected = expected_fields(name, set(tables))
        if table["extends"]:
            base = expected_fields(table["extends"], set(tables))
            assert base <= expected, f"{name} does not extend {table['extends']}"
            expected -= base
        written = set(table["rows"])
        if written != expected:
            wrong[name] = {"missing": sorted(expected - written), "not in the document": sorted(written - expected)}
    assert not wrong, wrong


def test_every_body_member_states_its_limits_and_default():
    text = read(API_MD)
    tables = schema_tables(text)
    bodies = {
        ref_name(op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema"))
        for op in operations().values()
    } - {None}
    missing = []
    for name in sorted(bodies):
        for field, row in tables[name]["rows"].items():
            for what, forms in limits(subschema(name, field)):
                if not mentions(row, forms):
                    missing.append((name, field, what, sorted(forms)))
    assert not missing, f"body members whose row does not state a limit or default: {missing}"


def test_every_parameter_is_documented_with_its_operation():
    sections = operation_sections(read(API_MD))
    missing = []
    for key, op in operations().items():
        rows = tables_in(sections[key])
        for parameter in op.get("parameters", []):
            name, where = parameter["name"], parameter["in"]
            if where == "path":
                continue
            if where == "header":
                if not re.search(r"`" + re.escape(name) + r"`", sections[key], re.IGNORECASE):
                    missing.append((key, name, "not mentioned"))
                continue
            if name not in rows:
                missing.append((key, name, "no row"))
                continue
            for what, forms in limits(parameter["schema"]):
                if not mentions(rows[name], forms):
                    missing.append((key, name, what, sorted(forms)))
    assert not missing, f"parameters not documented with their limits and default: {missing}"


def test_the_state_machine_tables_are_the_code_s():
    table = states.table_markdown()
    assert table in read(API_MD), "docs/api.md does not hold states.table_markdown()"
    readme = read(README)
    if "| from | allowed to |" in readme:
        assert table in readme, "the README's state table is not states.table_markdown()"


# ---- docs/operations.md against template.yaml, telemetry and the local stack ---------------


def rows_named(text: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in without_code_blocks(text).splitlines():
        if line.lstrip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            for name in re.findall(r"`([^`]+)`", cells[0]):
                rows.setdefault(name, []).append(line)
    return rows


def test_every_template_parameter_is_in_the_operations_guide_with_its_default():
    rows = rows_named(read(OPERATIONS_MD))
    missing = []
    for name, spec in template.load()["Parameters"].items():
        default = str(spec.get("Default", ""))
        forms = {f"`{default}`"} if default else {"empty"}
        if name not in rows:
            missing.append((name, "no row"))
        elif not any(any(form in row.split("|", 2)[2] for form in forms) for row in rows[name]):
            missing.append((name, f"default {default or 'empty'} not in its row"))
    assert not missing, missing


def test_every_metric_is_in_the_catalog_of_the_operations_guide():
    rows = rows_named(read(OPERATIONS_MD))
    wrong = []
    for name, (unit, dimensions) in telemetry.CATALOG.items():
        if name not in rows:
            wrong.append((name, "no row"))
            continue
        row = " ".join(rows[name])
        if unit not in row:
            wrong.append((name, f"unit {unit}"))
        for dimension in dimensions:
            if f"`{dimension}`" not in row:
                wrong.append((name, f"dimension {dimension}"))
    assert not wrong, wrong


def test_every_alarm_of_the_template_is_in_the_operations_guide():
    rows = rows_named(read(OPERATIONS_MD))
    alarms = [name for name, resource in template.load()["Resources"].items() if resource["Type"] == "AWS::CloudWatch::Alarm"]
    assert alarms
    missing = [name for name in alarms if name not in rows]
    assert not missing, f"alarms without a row in the operations guide: {missing}"


def test_every_local_stack_setting_is_in_the_operations_guide():
    source = read(ROOT / "local" / "settings.py")
    names = set(re.findall(r"""env(?:\.get)?\(\s*["']([A-Z][A-Z0-9_]+)["']""", source))
    names |= set(re.findall(r"""_number\(env, ["']([A-Z][A-Z0-9_]+)["']""", source))
    assert {"PORT", "LOCAL_API_KEYS", "LOCAL_FAULTS"} <= names
    rows = rows_named(read(OPERATIONS_MD))
    missing = sorted(name for name in names if name not in rows)
    assert not missing, f"local stack settings without a row: {missing}"


# ---- every page: links inside the repository, and the README's opening ----------------------


LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
AUTOLINK = re.compile(r"<((?:[a-z][a-z0-9+.-]*:|www\.)[^>\s]*)>", re.IGNORECASE)


def links(text: str) -> list[str]:
    prose = re.sub(r"`[^`\n]*`", "", without_code_blocks(text))
    return LINK.findall(prose) + REFERENCE.findall(prose) + AUTOLINK.findall(prose)


def inside(path: Path) -> bool:
    try:
        path.resolve().relative_to(ROOT)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository(page):
    text = read(page)
    broken = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:|^//|^www\.", target, re.IGNORECASE):
            broken.append((target, "leaves the repository"))
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path) if path else page
        if path.startswith("/") or not inside(file):
            broken.append((target, "outside the repository"))
        elif not file.exists():
            broken.append((target, "no such file"))
        elif anchor and file.suffix == ".md" and anchor not in anchors(read(file)):
            broken.append((target, "no such heading"))
        elif anchor and file.suffix != ".md":
            broken.append((target, "an anchor into a file that is not Markdown"))
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_path_reaches_outside_the_repository(page):
    text = read(page)
    outside = [m.group(0) for m in re.finditer(r"(?<![\w.])(?:\.\./)+[\w.-]*", text) if not inside(page.parent / m.group(0))]
    assert not outside, f"{page.relative_to(ROOT)} names paths outside the repository: {outside}"
    assert "api-contract" not in text, f"{page.relative_to(ROOT)} refers to the team's contract, which users do not have"


TOP_LEVEL = ("functions", "layers", "local", "tests", "bench", "examples", "client", "docs", "events", ".ci")


def ignored_by_git(path: str) -> bool:
    entries = [line.strip().lstrip("/") for line in read(ROOT / ".gitignore").splitlines() if line.strip()]
    return any(path.startswith(entry) for entry in entries if "*" not in entry)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_a_page_names_exists(page):
    """`functions/projector/`, `examples/receiver.py`...: the files a page sends its reader to."""
    pattern = r"(?<![\w./$-])((?:" + "|".join(re.escape(d) for d in TOP_LEVEL) + r")/[\w./-]*)"
    missing = []
    for match in re.finditer(pattern, read(page)):
        path = match.group(1).rstrip(".")
        if page.parent != ROOT and not (ROOT / path).exists() and (page.parent / path).exists():
            continue  # relative to the page (client/README.md: its own folders)
        if not (ROOT / path).exists() and not ignored_by_git(path):
            missing.append(path)
    assert not missing, f"{page.relative_to(ROOT)} names files the repository does not have: {missing}"


def test_the_readme_opens_with_the_two_commands():
    text = read(README)
    first = code_blocks(text)[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines()]
    assert "make run" in commands and "make test" in commands, first
    assert text.index("```") < text.index("\n## "), "the commands come before the first section"


def test_the_readme_shows_the_client_and_the_jobs_command_before_curl():
    text = read(README)
    names = [title for _, title, _ in headings(text)]
    assert "The Python client" in names and "The jobs command" in names
    client = text.index("\n## The Python client")
    command = text.index("\n## The jobs command")
    assert client < command < text.index("curl "), "the client, then the jobs command, then curl"
    for doc in ("docs/api.md", "docs/webhooks.md", "docs/operations.md"):
        assert f"]({doc}" in text, f"the README does not point to {doc}"
