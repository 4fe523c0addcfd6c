"""The console (``GET /console``) and the API docs page (``GET /v1/docs``) in a real browser.

Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium, against the
local stack of ``conftest.py``. Every name resolution but 127.0.0.1 fails in the browser
(``--host-resolver-rules``), as on a machine with no internet, and every request the pages make is
recorded from the DevTools ``Network`` events (Chrome's performance log). Waits are explicit
(``WebDriverWait`` polling for what a person would see), with a generous cap, never fixed sleeps.

Screenshots go to ``tests/artifacts/`` (ignored by git).

Some tests need routes of contract section 9 and section 1 that the service may not offer yet:
``GET /v1/jobs/{id}/history``, ``GET /v1/stats``, ``POST /v1/jobs/cancel`` and the ``Link`` header
on ``GET /v1/jobs``; each says which in its docstring.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.receiver import Receiver

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WAIT = 45  # seconds: a cap for what should take well under one (this machine is shared)
KEY_STORAGE = "jobsvc.console.apiKey"
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
    # no internet here: any host but the stack's fails at once instead of hanging
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)


# ---- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.access(path, os.X_OK), f"{path} missing: apt-get install chromium chromium-driver (.ci/run does)"
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1366,1000")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """The console in the browser, as a person uses it: by labels, buttons and what is shown."""

    def __init__(self, driver: WebDriver, base: str) -> None:
        self.driver = driver
        self.base = base

    # -- waiting and finding

    def until(self, condition: Callable[[WebDriver], object], what: str, timeout: float = WAIT,
              fail_on: tuple[str, ...] = ()):
        """Wait for ``condition``; stop at once if one of the ``fail_on`` elements (errors) shows."""

        def check(driver: WebDriver):
            for element_id in fail_on:
                shown = driver.find_element(By.ID, element_id)
                if shown.is_displayed():
                    raise AssertionError(f"waiting for {what}, the page said: {shown.text}")
            return condition(driver)

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(check)
        except TimeoutException:
            self.screenshot(f"timeout-{uuid.uuid4().hex[:6]}")
            raise AssertionError(f"timed out waiting for {what}; page: {self.visible_text()[:2000]}") from None

    def by_id(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def visible(self, element_id: str) -> WebElement:
        return self.until(lambda d: (e := d.find_element(By.ID, element_id)).is_displayed() and e, f"#{element_id} shown")

    def hidden(self, element_id: str) -> None:
        self.until(lambda d: not d.find_element(By.ID, element_id).is_displayed(), f"#{element_id} hidden")

    def text_of(self, element_id: str) -> str:
        return self.by_id(element_id).text

    def visible_text(self) -> str:
        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except Exception:  # noqa: BLE001 - only for messages
            return "?"

    def screenshot(self, name: str) -> Path:
        """The whole page (the window is stretched to it for the shot) as tests/artifacts/<name>.png."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        size = self.driver.get_window_size()
        height = self.driver.execute_script("return document.documentElement.scrollHeight") or size["height"]
        self.driver.set_window_size(size["width"], min(max(int(height) + 140, size["height"]), 6000))
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.set_window_size(size["width"], size["height"])
        return path

    # -- doing

    def open(self, fragment: str = "", key: str | None = None) -> None:
        """A fresh console (no key in the session) at ``#fragment``; with ``key``, signed in."""
        self.driver.get(self.base + "/v1/health")  # same origin: forget any key of an earlier test
        self.driver.execute_script("window.sessionStorage.clear()")
        self.driver.get(self.base + "/console" + (f"#{fragment}" if fragment else ""))
        self.visible("api-key")
        if key:
            self.sign_in(key)

    def sign_in(self, key: str) -> None:
        field = self.visible("api-key")
        field.clear()
        field.send_keys(key)
        self.by_id("key-submit").click()

    def type_into(self, element_id: str, text: str) -> None:
        field = self.by_id(element_id)
        field.clear()
        field.send_keys(text)

    def click(self, element_id: str) -> None:
        self.until(lambda d: (e := d.find_element(By.ID, element_id)).is_displayed() and e.is_enabled() and e,
                   f"#{element_id} clickable").click()

    def session_key(self) -> str | None:
        return self.driver.execute_script(f"return window.sessionStorage.getItem('{KEY_STORAGE}')")

    def row_ids(self, css: str = "[data-testid=job-row]", attribute: str = "data-job-id") -> list[str]:
        return [row.get_attribute(attribute) for row in self.all(css)]

    def history(self) -> list[dict]:
        return [
            dict(zip(("status", "from", "at", "actor", "stop_reason"), (c.text for c in row.find_elements(By.TAG_NAME, "td"))))
            for row in self.all("#history-body [data-testid=history-row]")
        ]

    def field(self, name: str) -> str:
        return self.driver.find_element(By.CSS_SELECTOR, f'#job-fields [data-field="{name}"] dd').text

    # -- what the browser did

    def requests(self) -> list[str]:
        """Every URL the browser asked for since the last call (DevTools Network events)."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls

    def console_errors(self) -> list[str]:
        """Errors logged by the page since the last call, but for answers with an error status (4xx)."""
        return [
            e["message"] for e in self.driver.get_log("browser")
            if e["level"] == "SEVERE" and "Failed to load resource: the server responded with a status of 4" not in e["message"]
        ]


@pytest.fixture
def page(browser, stack) -> Page:
    console = Page(browser, stack["base"])
    browser.get(stack["base"] + "/v1/health")
    browser.get_log("performance")  # start each test with empty logs
    browser.get_log("browser")
    return console


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.close()


@pytest.fixture
def key(keys) -> str:
    return keys["a"][0]


def own_host_only(urls: list[str], base: str) -> list[str]:
    """The URLs that went anywhere but the stack (data: URLs are the page's own bytes)."""
    return [u for u in urls if not (u.startswith(base + "/") or u.startswith("data:"))]


def wait_for(predicate: Callable[[], object], what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ---- the jobs list and one job -----------------------------------------------------------------


def test_find_a_job_by_its_source_id_open_it_and_cancel_it(page, api, key, tag):
    job = api.create(metadata={"source_id": tag, "note": "<b>not bold</b>"})
    api.create(metadata={"source_id": tag + "-other"})
    page.open(key=key)
    page.visible("jobs-view")

    page.type_into("f-source", tag)
    page.click("apply-filters")
    page.until(lambda d: page.row_ids() == [job["id"]], "exactly the job with that source id")
    assert page.driver.current_url.endswith("#/jobs?source_id=" + tag), "the filter is kept in the address"
    page.visible("list-end")
    page.screenshot("console-jobs")

    page.driver.find_element(By.CSS_SELECTOR, f'[data-job-id="{job["id"]}"] a').click()
    page.visible("job-view")
    page.until(lambda d: page.by_id("job-status").text == "created", "the job's status")
    assert page.text_of("job-id") == job["id"]
    assert page.field("job_type") == "job"
    # what comes from the API is text, never markup
    assert "<b>not bold</b>" in page.field("metadata")
    assert not page.all("#job-fields b")

    page.click("cancel-job")
    page.visible("cancel-confirm")
    assert job["id"] in page.text_of("cancel-question")
    page.click("cancel-confirm-yes")
    page.until(lambda d: page.by_id("job-status").text == "cancelled", "the page to show the job cancelled")
    assert page.field("stop_reason") == "cancelled"
    assert "cancelled" in page.text_of("notice")
    assert not page.by_id("cancel-job").is_enabled(), "a terminal job cannot be cancelled again"
    page.screenshot("console-job-cancelled")

    stored = api.job(job["id"])
    assert (stored["status"], stored["stop_reason"]) == ("cancelled", "cancelled")


def test_cancelling_from_the_page_adds_a_cancelled_entry_to_the_history(page, api, key, keys, tag):
    """Needs GET /v1/jobs/{job_id}/history (contract section 9)."""
    job = api.create(metadata={"source_id": tag})
    api.patch_ok(job["id"], status="pending")
    page.open(f"/jobs/{job['id']}", key=key)
    page.visible("job-view")
    page.until(lambda d: [h["status"] for h in page.history()] == ["created", "pending"], "the history so far",
               fail_on=("history-error",))
    assert page.history()[1]["from"] == "created"
    assert page.history()[1]["actor"] == f"user:{keys['a'][2]}"

    page.click("cancel-job")
    page.click("cancel-confirm-yes")
    page.until(lambda d: [h["status"] for h in page.history()] == ["created", "pending", "cancelled"],
               "a cancelled entry in the history", fail_on=("history-error", "error"))
    last = page.history()[-1]
    assert (last["from"], last["actor"], last["stop_reason"]) == ("pending", f"user:{keys['a'][2]}", "cancelled")
    page.screenshot("console-history")


def test_the_list_pages_by_following_the_link_header(page, api, key, tag):
    """Needs the Link header (rel="next") on GET /v1/jobs (contract section 1)."""
    ids = [api.create(metadata={"source_id": tag})["id"] for _ in range(5)]
    newest_first = sorted(ids, reverse=True)
    page.open(f"/jobs?source_id={tag}&limit=2", key=key)
    page.until(lambda d: page.row_ids() == newest_first[:2], "the first page")
    page.until(lambda d: page.by_id("load-more").is_displayed(), "a next page offered (Link rel=next)",
               fail_on=("list-end",))
    page.click("load-more")
    page.until(lambda d: page.row_ids() == newest_first[:4], "the second page below the first")
    page.click("load-more")
    page.until(lambda d: page.row_ids() == newest_first, "every job")
    page.until(lambda d: not page.by_id("load-more").is_displayed(), "no more pages offered")
    page.visible("list-end")


def test_a_job_shows_its_messages_and_webhook_attempts_and_redelivers(page, api, key, tag, receiver):
    route = f"/console-{uuid.uuid4().hex[:8]}"
    job = api.create(status="running", callback_url=receiver.url(route), metadata={"source_id": tag})
    markup = '<img src="x" id="injected">'
    assert api.post(f"/v1/jobs/{job['id']}/messages", json={"role": "user", "content": markup}).status_code == 201
    assert api.post(f"/v1/jobs/{job['id']}/messages", json={"role": "assistant", "content": {"step": 1}}).status_code == 201
    api.patch_ok(job["id"], status="completed")
    assert receiver.wait_for(lambda: len(receiver.to(route)) == 1, timeout=WAIT), "the first delivery"
    wait_for(lambda: len(api.get(f"/v1/jobs/{job['id']}/callbacks").json()) == 1, "the first attempt recorded")

    page.open(f"/jobs/{job['id']}", key=key)
    page.until(lambda d: len(page.all("#messages-body [data-testid=message-row]")) == 2, "both messages")
    first, second = page.all("#messages-body [data-testid=message-row]")
    assert markup in first.text and "user" in first.text
    assert '"step": 1' in second.text and "assistant" in second.text
    assert not page.all("#injected") and not page.all("#messages-body img")
    page.until(lambda d: page.row_ids("#callbacks-body [data-testid=callback-row]", "data-succeeded") == ["true"],
               "the delivered attempt")
    assert "job.completed" in page.text_of("callbacks-body")

    page.click("redeliver")
    page.until(lambda d: "redelivery" in page.text_of("notice"), "the redelivery notice")
    assert receiver.wait_for(lambda: len(receiver.to(route)) == 2, timeout=WAIT), "the redelivery"
    wait_for(lambda: len(api.get(f"/v1/jobs/{job['id']}/callbacks").json()) == 2, "the second attempt recorded")
    page.click("refresh-job")
    page.until(lambda d: len(page.all("#callbacks-body [data-testid=callback-row]")) == 2, "both attempts on the page")
    page.screenshot("console-webhooks")


def test_a_batch_shows_its_items(page, api, key, tag):
    created = api.post("/v1/batches", json={
        "provider": "simulated",
        "metadata": {"source_id": tag},
        "requests": [{"custom_id": "q1", "params": {}}, {"custom_id": "q2", "params": {"simulate": "errored"}}],
    })
    assert created.status_code == 201, created.text
    batch = created.json()
    page.open(f"/jobs/{batch['id']}", key=key)
    page.until(lambda d: page.field("provider") == "simulated", "the batch's own fields")
    page.visible("items-section")
    wait_for(lambda: api.get(f"/v1/batches/{batch['id']}").json()["status"] == "completed", "the batch to end")
    page.click("refresh-job")
    page.until(lambda d: page.row_ids("#items-body [data-testid=item-row]", "data-custom-id") == ["q1", "q2"], "the items")
    statuses = [row.find_element(By.CSS_SELECTOR, ".badge").text for row in page.all("#items-body [data-testid=item-row]")]
    assert statuses == ["completed", "failed"]
    page.until(lambda d: page.by_id("job-status").text == "completed", "the batch completed")
    assert page.text_of("cancel-job") == "Cancel the batch" and not page.by_id("cancel-job").is_enabled()


# ---- the key -----------------------------------------------------------------------------------


def test_a_wrong_key_shows_the_key_prompt_again(page, key):
    page.open()
    assert page.session_key() is None
    page.sign_in("jsk_not_a_key_of_this_service_000")
    page.until(lambda d: page.by_id("key-error").is_displayed() and "401" in page.text_of("key-error"),
               "the refusal on the key prompt")
    page.visible("key-view")
    assert not page.by_id("jobs-view").is_displayed() and not page.by_id("nav").is_displayed()
    assert page.session_key() is None, "a refused key is forgotten"

    page.sign_in(key)
    page.visible("jobs-view")
    page.hidden("key-view")
    assert page.session_key() == key, "the key is kept in the session"
    assert page.driver.execute_script("return window.localStorage.length") == 0, "and nowhere else"

    # a key that stops working while the console is open: the next answer (401) sends back to the prompt
    page.driver.execute_script(f"window.sessionStorage.setItem('{KEY_STORAGE}', 'jsk_revoked_meanwhile_00000000')")
    page.click("apply-filters")
    page.visible("key-view")
    assert "401" in page.text_of("key-error")
    assert page.session_key() is None

    page.sign_in(key)
    page.visible("jobs-view")
    page.click("sign-out")
    page.visible("key-view")
    assert page.session_key() is None


# ---- nothing from another host -----------------------------------------------------------------


def test_the_console_loads_nothing_from_another_host(page, api, key, tag, stack):
    base = stack["base"]
    job = api.create(metadata={"source_id": tag})
    api.post(f"/v1/jobs/{job['id']}/messages", json={"role": "user", "content": "hello"})
    page.open(key=key)
    page.visible("jobs-view")
    page.until(lambda d: page.row_ids(), "the list")
    page.driver.get(f"{base}/console#/jobs/{job['id']}")
    page.until(lambda d: len(page.all("#messages-body [data-testid=message-row]")) == 1, "the job's message")
    page.click("nav-stats")
    page.visible("stats-view")
    page.until(lambda d: page.by_id("stats-body").is_displayed() or page.by_id("stats-error").is_displayed(), "stats or their error")
    page.click("nav-bulk")
    page.visible("bulk-view")

    urls = page.requests()
    assert f"{base}/console" in urls and any(u.startswith(f"{base}/console/app.js?v=") for u in urls)
    assert any(u.startswith(f"{base}/console/app.css?v=") for u in urls)
    assert own_host_only(urls, base) == []
    assert page.console_errors() == []

    # the page's answer forbids any other host to the browser as well

    policy = requests.get(f"{base}/console", timeout=30).headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "http" not in policy


def test_the_docs_page_renders_every_operation_offline(browser, stack, api):
    base = stack["base"]
    page = Page(browser, base)
    browser.get(base + "/v1/health")
    page.requests(), page.console_errors()
    document = api.get("/v1/openapi.json").json()
    verbs = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    operations = {(method.upper(), path) for path, item in document["paths"].items() for method in item if method in verbs}
    browser.get(base + "/v1/docs")

    page.until(lambda d: d.find_elements(By.CSS_SELECTOR, '.opblock-get [data-path="/v1/jobs"]'), "GET /v1/jobs")
    shown = """return Array.from(document.querySelectorAll(".opblock")).map(block => [
        block.querySelector(".opblock-summary-method").textContent,
        block.querySelector(".opblock-summary-path").getAttribute("data-path")])"""
    page.until(lambda d: {tuple(op) for op in d.execute_script(shown)} == operations, "every operation of the document")

    # an operation opens with its parameters; the schemas are there to read
    browser.find_element(By.CSS_SELECTOR, '.opblock-get [data-path="/v1/jobs"]').click()
    page.until(lambda d: d.find_elements(By.CSS_SELECTOR, '.opblock.is-open tr[data-param-name="source_id"]'),
               "the list's parameters")
    titles = ".models article[data-json-schema-level='0'] .json-schema-2020-12__title"
    page.until(lambda d: {e.text for e in d.find_elements(By.CSS_SELECTOR, titles)} == set(document["components"]["schemas"]),
               "every schema")
    job_schema = next(a for a in browser.find_elements(By.CSS_SELECTOR, ".models article[data-json-schema-level='0']")
                      if a.find_element(By.CSS_SELECTOR, ".json-schema-2020-12__title").text == "Job")
    job_schema.find_element(By.CSS_SELECTOR, ".json-schema-2020-12-accordion").click()
    page.until(lambda d: "last_updated_at" in job_schema.text and "heartbeat_timeout_seconds" in job_schema.text,
               "the Job schema's properties")
    page.screenshot("docs")

    urls = page.requests()
    assert any(u.startswith(f"{base}/v1/docs/swagger-ui-bundle.js?v=") for u in urls)
    assert f"{base}/v1/openapi.json" in urls
    assert own_host_only(urls, base) == []
    assert page.console_errors() == []


# ---- stats and bulk cancel -----------------------------------------------------------------------


def test_the_stats_view_draws_its_chart(page, api, key, tag):
    """Needs GET /v1/stats (contract section 9)."""
    api.drive("completed", job_type="run", metadata={"source_id": tag})
    api.drive("cancelled", metadata={"source_id": tag})
    api.create(status="running", job_type="run", metadata={"source_id": tag})
    page.open("/stats", key=key)
    page.visible("stats-view")
    page.until(lambda d: len(page.all("#stats-chart rect[data-testid=bar]")) == 7, "a bar per status",
               fail_on=("stats-error",))

    def drawn() -> dict[str, int]:
        return {bar.get_attribute("data-label"): int(bar.get_attribute("data-value"))
                for bar in page.all("#stats-chart rect[data-testid=bar]")}

    bars = drawn()
    assert list(bars) == ["created", "pending", "running", "completed", "failed", "cancelled", "expired"]
    assert bars["completed"] >= 1 and bars["cancelled"] >= 1 and bars["running"] >= 1
    table = {row.get_attribute("data-status"): int(row.find_elements(By.TAG_NAME, "td")[1].text)
             for row in page.all("#stats-counts-body tr")}
    assert table == bars, "the chart draws the counts it lists"
    tallest = max(bars, key=bars.get)
    heights = {bar.get_attribute("data-label"): float(bar.get_attribute("height")) for bar in page.all("#stats-chart rect[data-testid=bar]")}
    assert heights[tallest] > 0 and all(heights[s] > 0 for s, n in bars.items() if n)
    assert len(page.all("#window-chart rect[data-testid=bar]")) == 5
    assert "completion rate" in page.text_of("stats-window")
    page.screenshot("console-stats")

    # narrowed to one job type, for another window
    page.type_into("s-hours", "48")
    Select(page.by_id("s-type")).select_by_visible_text("run")
    page.click("stats-apply")
    page.until(lambda d: d.current_url.endswith("#/stats?hours=48&job_type=run"), "the new query")

    def shows_the_counts_now(driver: WebDriver) -> bool:
        if drawn() == api.get("/v1/stats", params={"hours": 48, "job_type": "run"}).json()["counts"]:
            return True
        page.click("stats-apply")  # a job changed status in between: ask the page to look again
        return False

    page.until(shows_the_counts_now, "the counts of run jobs", fail_on=("stats-error",))


def test_bulk_cancel_asks_first_and_shows_what_it_cancelled(page, api, key, tag):
    """Needs POST /v1/jobs/cancel (contract section 9)."""
    targets = [api.drive(status, metadata={"source_id": tag})["id"] for status in ("created", "pending", "running")]
    done = api.drive("completed", metadata={"source_id": tag})["id"]
    bystander = api.create(metadata={"source_id": tag + "-not"})["id"]
    page.open("/bulk-cancel", key=key)
    page.visible("bulk-view")

    page.click("bulk-review")  # nothing filled in: no request, an explanation
    page.visible("bulk-error")
    assert not page.by_id("bulk-confirm").is_displayed()

    page.type_into("b-source", tag)
    page.click("bulk-review")
    page.visible("bulk-confirm")
    assert tag in page.text_of("bulk-summary")
    page.click("bulk-confirm-no")  # changed my mind: nothing happens
    page.hidden("bulk-confirm")
    assert api.job(targets[0])["status"] == "created"

    page.click("bulk-review")
    page.click("bulk-confirm-yes")
    page.until(lambda d: page.by_id("bulk-result").is_displayed(), "the result", fail_on=("bulk-error",))
    page.until(lambda d: sorted(page.row_ids("#bulk-ids [data-testid=bulk-id]")) == sorted(targets), "the cancelled ids")
    assert "Cancelled 3 jobs" in page.text_of("bulk-count")
    assert not page.by_id("bulk-more").is_displayed()
    page.screenshot("console-bulk-cancel")

    assert [api.job(i)["status"] for i in targets] == ["cancelled"] * 3
    assert api.job(done)["status"] == "completed" and api.job(bystander)["status"] == "created"
