// The jobs console (contract section 9): one page, no dependencies, nothing from another host.
//
// The API key lives in sessionStorage only and goes, as "Authorization: Bearer", to this
// service's own origin only. Everything that comes from the API is put on the page as text
// (textContent, attributes, SVG attributes): never parsed as HTML.
(function () {
  "use strict";

  var KEY_STORAGE = "jobsvc.console.apiKey";
  var STATUSES = ["created", "pending", "running", "completed", "failed", "cancelled", "expired"];
  var TERMINAL = { completed: true, failed: true, cancelled: true, expired: true };
  var REFRESH_MS = 10000;
  var SVG = "http://www.w3.org/2000/svg";
  // the service's root, relative to this page (/console -> /), so any base path works
  var API_ROOT = new URL("./", document.baseURI);
  var VIEWS = ["key-view", "jobs-view", "job-view", "stats-view", "bulk-view"];

  var $ = function (id) { return document.getElementById(id); };

  // ---- the page, as text only ---------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, children) {
    var node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      node.setAttribute(name, value === true ? "" : String(value));
    });
  }

  function append(node, children) {
    if (children === null || children === undefined) return;
    if (!Array.isArray(children)) children = [children];
    children.forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "object" && child.nodeType ? child : document.createTextNode(String(child)));
    });
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function setText(node, value) { node.textContent = value === null || value === undefined ? "" : String(value); }

  function show(node, visible) { node.hidden = !visible; }

  function td(content, attrs) { return el("td", attrs, content); }

  function none() { return el("span", { "class": "muted" }, "\u2014"); }

  function value(v) {
    if (v === null || v === undefined || v === "") return none();
    if (typeof v === "object") return el("pre", { "class": "json" }, JSON.stringify(v, null, 2));
    return String(v);
  }

  function when(iso) {
    if (!iso) return none();
    var short = String(iso).replace("T", " ").replace(/\.\d+(Z|[+-]\d\d:\d\d)$/, "$1");
    return el("time", { datetime: iso, title: iso }, short);
  }

  function badge(status) {
    var known = STATUSES.indexOf(status) >= 0 ? status : "unknown";
    return el("span", { "class": "badge status-" + known, "data-status": status }, status);
  }

  function jobLink(id) {
    return el("a", { href: "#/jobs/" + encodeURIComponent(id), "class": "job-link" }, el("code", null, id));
  }

  // ---- the key ------------------------------------------------------------------------

  function storedKey() {
    try { return window.sessionStorage.getItem(KEY_STORAGE); } catch (e) { return null; }
  }

  function forgetKey() {
    try { window.sessionStorage.removeItem(KEY_STORAGE); } catch (e) { /* nothing stored */ }
  }

  function askForKey(reason) {
    forgetKey();
    stopTimer();
    generation++;
    hideBanners();
    VIEWS.forEach(function (id) { show($(id), id === "key-view"); });
    show($("nav"), false);
    show($("session"), false);
    setText($("key-error"), reason || "");
    show($("key-error"), !!reason);
    $("api-key").value = "";
    $("api-key").focus();
  }

  // ---- the API ------------------------------------------------------------------------

  function ApiError(status, detail, body) {
    this.status = status;
    this.detail = detail;
    this.body = body;
    this.message = (status ? status + ": " : "") + detail;
  }

  function describe(body, response) {
    if (body && typeof body === "object" && !Array.isArray(body)) {
      var detail = body.detail !== undefined ? body.detail : body.message;
      var text;
      if (Array.isArray(detail)) {
        text = detail.map(function (p) {
          if (p && typeof p === "object") {
            var where = Array.isArray(p.loc) ? p.loc.join(".") : "";
            return (where ? where + ": " : "") + (p.msg || JSON.stringify(p));
          }
          return String(p);
        }).join("; ");
      } else if (detail !== undefined) {
        text = typeof detail === "string" ? detail : JSON.stringify(detail);
      }
      if (text !== undefined) {
        if (body.current_status) text += " (current status: " + body.current_status + ")";
        return text;
      }
    }
    if (typeof body === "string" && body) return body.slice(0, 300);
    return response.statusText || "request failed";
  }

  // The URL of rel="next" in a Link header (RFC 8288), resolved against the answer's URL.
  function nextLink(header, base) {
    if (!header) return null;
    var pattern = /<([^>]*)>([^,<]*)/g;
    var match;
    while ((match = pattern.exec(header)) !== null) {
      var params = match[2].split(";");
      for (var i = 0; i < params.length; i++) {
        var pair = params[i].split("=");
        if (pair.length < 2 || pair[0].trim().toLowerCase() !== "rel") continue;
        var rels = pair.slice(1).join("=").trim().replace(/^"|"$/g, "").toLowerCase().split(/\s+/);
        if (rels.indexOf("next") >= 0) {
          try { return new URL(match[1], base); } catch (e) { return null; }
        }
      }
    }
    return null;
  }

  // method, a path under the service root (or a URL from a Link header), {query, body}
  // -> {data, next}; throws ApiError. A 401 anywhere sends the user back to the key prompt.
  async function api(method, target, options) {
    options = options || {};
    var key = storedKey();
    if (!key) { askForKey(""); throw new ApiError(401, "no API key"); }
    var url = target instanceof URL ? new URL(target.href) : new URL(target, API_ROOT);
    if (url.origin !== window.location.origin) {
      throw new ApiError(0, "refused to send the API key to another host (" + url.origin + ")");
    }
    Object.keys(options.query || {}).forEach(function (name) {
      var v = options.query[name];
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(name, String(v));
    });
    var init = {
      method: method,
      headers: { "Accept": "application/json", "Authorization": "Bearer " + key },
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
      referrerPolicy: "no-referrer"
    };
    if (options.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    var response;
    try {
      response = await fetch(url.href, init);
    } catch (e) {
      throw new ApiError(0, "the service could not be reached (" + e.message + ")");
    }
    var raw = await response.text();
    var body = null;
    if (raw) {
      try { body = JSON.parse(raw); } catch (e) { body = raw; }
    }
    if (!response.ok) {
      var error = new ApiError(response.status, describe(body, response), body);
      // an answer to a key the user has since replaced (a request still in flight when they
      // signed in again) says nothing about the key now stored
      if (response.status === 401 && storedKey() === key) {
        askForKey("The service refused the key (" + error.message + "). Enter a valid API key.");
      }
      throw error;
    }
    return { data: body, next: nextLink(response.headers.get("Link"), response.url || url.href) };
  }

  function path() {
    return Array.prototype.map.call(arguments, encodeURIComponent).join("/");
  }

  // ---- banners and section errors -----------------------------------------------------

  function hideBanners() {
    show($("error"), false);
    show($("notice"), false);
  }

  function fail(error, target) {
    if (error && error.status === 401) return; // the key prompt says it
    var message = error instanceof ApiError ? "Error " + error.message : "Error: " + (error && error.message || error);
    if (error && error.status === 404 && error.detail === "no such route") {
      message = "This service does not offer this yet (404: no such route).";
    }
    if (target) {
      setText(target, message);
      show(target, true);
    } else {
      setText($("error-text"), message);
      show($("error"), true);
    }
  }

  function notice(message) {
    setText($("notice"), message);
    show($("notice"), true);
  }

  // ---- views --------------------------------------------------------------------------

  var generation = 0; // answers for a view that is no longer shown are dropped
  var current = { view: null, refresh: null };
  var timer = null;

  function showView(id, refresh) {
    generation++;
    VIEWS.forEach(function (name) { show($(name), name === id); });
    show($("nav"), true);
    show($("session"), true);
    ["nav-jobs", "nav-stats", "nav-bulk"].forEach(function (name) { $(name).removeAttribute("aria-current"); });
    var nav = { "jobs-view": "nav-jobs", "job-view": "nav-jobs", "stats-view": "nav-stats", "bulk-view": "nav-bulk" }[id];
    if (nav) $(nav).setAttribute("aria-current", "page");
    current = { view: id, refresh: refresh || null };
    return generation;
  }

  function stopTimer() {
    if (timer !== null) { window.clearInterval(timer); timer = null; }
  }

  function applyAutoRefresh() {
    stopTimer();
    if ($("auto-refresh").checked) {
      timer = window.setInterval(function () {
        if (current.refresh && document.visibilityState !== "hidden") current.refresh();
      }, REFRESH_MS);
    }
  }

  function route() {
    hideBanners();
    if (!storedKey()) { askForKey(""); return; }
    var hash = window.location.hash.replace(/^#/, "") || "/jobs";
    var q = hash.indexOf("?");
    var where = q >= 0 ? hash.slice(0, q) : hash;
    var params = new URLSearchParams(q >= 0 ? hash.slice(q + 1) : "");
    if (where === "/jobs") return showJobs(params);
    if (where.indexOf("/jobs/") === 0) return showJob(decodeURIComponent(where.slice(6)));
    if (where === "/stats") return showStats(params);
    if (where === "/bulk-cancel") return showBulk();
    window.location.hash = "#/jobs";
  }

  // ---- jobs ---------------------------------------------------------------------------

  var LIST_FILTERS = [
    ["status", "f-status"], ["active", "f-active"], ["job_type", "f-type"],
    ["source_id", "f-source"], ["updated_before", "f-updated"], ["limit", "f-limit"]
  ];
  var list = { query: {}, next: null, count: 0 };

  function localInput(iso) { // RFC 3339 -> the value of a datetime-local input, in local time
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function isoFromInput(local) { // a datetime-local value (local time) -> RFC 3339 in UTC
    if (!local) return "";
    var d = new Date(local);
    return isNaN(d.getTime()) ? "" : d.toISOString();
  }

  function showJobs(params) {
    showView("jobs-view", function () { loadJobs(true); });
    var query = {};
    LIST_FILTERS.forEach(function (pair) {
      var v = params.get(pair[0]) || "";
      query[pair[0]] = v;
      $(pair[1]).value = pair[0] === "updated_before" ? localInput(v) : v;
    });
    if (!query.limit) { query.limit = "50"; $("f-limit").value = "50"; }
    var sizes = $("f-limit");
    if (sizes.value !== query.limit) { // a page size from the address that the menu does not offer
      sizes.appendChild(el("option", null, query.limit));
      sizes.value = query.limit;
    }
    list.query = query;
    loadJobs(true);
  }

  function filtersHash() {
    var params = new URLSearchParams();
    LIST_FILTERS.forEach(function (pair) {
      var v = $(pair[1]).value.trim();
      if (pair[0] === "updated_before") v = isoFromInput(v);
      if (v && !(pair[0] === "limit" && v === "50")) params.set(pair[0], v);
    });
    var qs = params.toString();
    return "#/jobs" + (qs ? "?" + qs : "");
  }

  async function loadJobs(reset) {
    var gen = generation;
    var body = $("jobs-body");
    var target = reset ? "v1/jobs" : list.next;
    if (!target) return;
    $("load-more").disabled = true;
    setText($("jobs-summary"), "Loading\u2026");
    try {
      var answer = await api("GET", target, reset ? { query: list.query } : {});
      if (gen !== generation) return;
      if (reset) { clear(body); list.count = 0; }
      var rows = Array.isArray(answer.data) ? answer.data : [];
      rows.forEach(function (job) { body.appendChild(jobRow(job)); });
      list.count += rows.length;
      list.next = answer.next;
      setText($("jobs-summary"), list.count === 0 ? "No jobs match." :
        list.count + (list.count === 1 ? " job" : " jobs") + (answer.next ? " shown; more follow." : "."));
      show($("load-more"), !!answer.next);
      show($("list-end"), !answer.next && list.count > 0);
    } catch (error) {
      if (gen !== generation) return;
      setText($("jobs-summary"), "");
      fail(error);
    } finally {
      $("load-more").disabled = false;
    }
  }

  function jobRow(job) {
    var source = job.metadata && typeof job.metadata === "object" ? job.metadata.source_id : null;
    return el("tr", { "data-testid": "job-row", "data-job-id": job.id }, [
      td(jobLink(job.id)), td(badge(job.status)), td(value(job.job_type)), td(value(source)),
      td(when(job.created_at)), td(when(job.last_updated_at)), td(value(job.stop_reason))
    ]);
  }

  // ---- one job ------------------------------------------------------------------------

  var FIELD_ORDER = [
    "id", "status", "job_type", "created_at", "last_updated_at", "completed_at", "expires_at",
    "stop_reason", "organization_id", "user_id", "background", "heartbeat_timeout_seconds",
    "callback_url", "callback_sent_at", "callback_status_code", "callback_error", "ttft_ns",
    "total_duration_ns", "provider", "provider_batch_id", "request_counts", "last_polled_at",
    "last_poll_error", "cancel_requested"
  ];
  var TIME_FIELDS = /(_at)$/;
  var job = { id: null, data: null, messagesNext: null, callbacksNext: null, itemsNext: null };

  function showJob(id) {
    showView("job-view", function () { refreshJob(); });
    job = { id: id, data: null, messagesNext: null, callbacksNext: null, itemsNext: null };
    setText($("job-id"), id);
    setText($("job-status"), "");
    $("job-status").className = "badge";
    clear($("job-fields"));
    [["history-body", 5], ["messages-body", 4], ["callbacks-body", 8], ["items-body", 3]].forEach(function (table) {
      clear($(table[0]));
      $(table[0]).appendChild(el("tr", null, td("Loading\u2026", { colspan: table[1], "class": "muted" })));
    });
    ["job-error", "history-error", "messages-error", "callbacks-error", "items-error", "cancel-confirm",
      "items-section", "messages-more", "callbacks-more", "items-more"].forEach(function (name) { show($(name), false); });
    $("cancel-job").disabled = true;
    $("redeliver").disabled = true;
    loadJob();
    loadHistory();
    loadMessages(true);
    loadCallbacks(true);
  }

  function refreshJob() {
    loadJob();
    loadHistory();
    loadCallbacks(true);
  }

  async function loadJob() {
    var gen = generation;
    var id = job.id;
    try {
      var data = (await api("GET", "v1/jobs/" + path(id))).data;
      if (data && data.job_type === "batch") {
        data = (await api("GET", "v1/batches/" + path(id))).data; // the batch's own members
      }
      if (gen !== generation) return;
      show($("job-error"), false);
      job.data = data;
      renderJob(data);
      if (data.job_type === "batch") {
        show($("items-section"), true);
        loadItems(true);
      }
    } catch (error) {
      if (gen !== generation) return;
      fail(error, $("job-error"));
    }
  }

  function renderJob(data) {
    var status = $("job-status");
    status.className = "badge status-" + (STATUSES.indexOf(data.status) >= 0 ? data.status : "unknown");
    status.setAttribute("data-status", data.status);
    setText(status, data.status);
    var fields = $("job-fields");
    clear(fields);
    var names = FIELD_ORDER.filter(function (n) { return n in data; });
    Object.keys(data).forEach(function (n) { if (names.indexOf(n) < 0 && n !== "metadata") names.push(n); });
    names.push("metadata");
    names.forEach(function (name) {
      var v = data[name];
      var shown = name === "status" ? badge(v) : TIME_FIELDS.test(name) ? when(v) : value(v);
      fields.appendChild(el("div", { "class": "field", "data-field": name }, [el("dt", null, name), el("dd", null, shown)]));
    });
    var terminal = !!TERMINAL[data.status];
    var cancel = $("cancel-job");
    cancel.disabled = terminal || data.cancel_requested === true;
    cancel.title = terminal ? "the job has ended" : data.cancel_requested ? "a cancel was already requested" : "";
    setText(cancel, data.job_type === "batch" ? "Cancel the batch" : "Cancel the job");
    var redeliver = $("redeliver");
    redeliver.disabled = !(terminal && data.callback_url);
    redeliver.title = !data.callback_url ? "the job has no callback_url" : !terminal ? "the job has not ended" : "";
  }

  async function loadHistory() {
    var gen = generation;
    try {
      var entries = (await api("GET", "v1/jobs/" + path(job.id) + "/history")).data;
      if (gen !== generation) return;
      var body = $("history-body");
      clear(body);
      (Array.isArray(entries) ? entries : []).forEach(function (entry) {
        body.appendChild(el("tr", { "data-testid": "history-row", "data-status": entry.status }, [
          td(badge(entry.status)), td(entry.from ? badge(entry.from) : none()), td(when(entry.at)),
          td(value(entry.actor)), td(value(entry.stop_reason))
        ]));
      });
      if (!body.firstChild) body.appendChild(el("tr", null, td("No history.", { colspan: 5, "class": "muted" })));
      show($("history-error"), false);
    } catch (error) {
      if (gen !== generation) return;
      clear($("history-body"));
      fail(error, $("history-error"));
    }
  }

  async function loadMessages(reset) {
    var gen = generation;
    var target = reset ? "v1/jobs/" + path(job.id) + "/messages" : job.messagesNext;
    if (!target) return;
    try {
      var answer = await api("GET", target, reset ? { query: { limit: 50 } } : {});
      if (gen !== generation) return;
      var body = $("messages-body");
      if (reset) clear(body);
      (answer.data || []).forEach(function (m) {
        var content = typeof m.content === "string" ? el("pre", { "class": "content" }, m.content) : value(m.content);
        body.appendChild(el("tr", { "data-testid": "message-row", "data-message-id": m.id }, [
          td(when(m.created_at)), td(value(m.role)), td(content), td(el("code", null, m.id))
        ]));
      });
      if (!body.firstChild) body.appendChild(el("tr", null, td("No messages.", { colspan: 4, "class": "muted" })));
      job.messagesNext = answer.next;
      show($("messages-more"), !!answer.next);
      show($("messages-error"), false);
    } catch (error) {
      if (gen !== generation) return;
      clear($("messages-body"));
      fail(error, $("messages-error"));
    }
  }

  async function loadCallbacks(reset) {
    var gen = generation;
    var target = reset ? "v1/jobs/" + path(job.id) + "/callbacks" : job.callbacksNext;
    if (!target) return;
    try {
      var answer = await api("GET", target);
      if (gen !== generation) return;
      var body = $("callbacks-body");
      if (reset) clear(body);
      (answer.data || []).forEach(function (a) {
        body.appendChild(el("tr", { "data-testid": "callback-row", "data-succeeded": String(!!a.succeeded) }, [
          td(value(a.attempt)), td(value(a.event_type)), td(when(a.sent_at)), td(value(a.status_code)),
          td(el("span", { "class": a.succeeded ? "ok" : "bad" }, a.succeeded ? "delivered" : "failed")),
          td(a.duration_ms === null || a.duration_ms === undefined ? none() : a.duration_ms + " ms"),
          td(value(a.error)), td(el("code", null, a.webhook_id))
        ]));
      });
      if (!body.firstChild) body.appendChild(el("tr", null, td("No webhook attempts.", { colspan: 8, "class": "muted" })));
      job.callbacksNext = answer.next;
      show($("callbacks-more"), !!answer.next);
      show($("callbacks-error"), false);
    } catch (error) {
      if (gen !== generation) return;
      clear($("callbacks-body"));
      fail(error, $("callbacks-error"));
    }
  }

  async function loadItems(reset) {
    var gen = generation;
    var target = reset ? "v1/batches/" + path(job.id) + "/items" : job.itemsNext;
    if (!target) return;
    try {
      var answer = await api("GET", target, reset ? { query: { limit: 100 } } : {});
      if (gen !== generation) return;
      var body = $("items-body");
      if (reset) clear(body);
      (answer.data || []).forEach(function (item) {
        var result = el("details", null, [
          el("summary", null, item.truncated ? "result (truncated)" : "result"),
          el("pre", { "class": "json" }, typeof item.result === "string" ? item.result : JSON.stringify(item.result, null, 2))
        ]);
        body.appendChild(el("tr", { "data-testid": "item-row", "data-custom-id": item.custom_id }, [
          td(el("code", null, item.custom_id)), td(badge(item.status)), td(result)
        ]));
      });
      if (!body.firstChild) body.appendChild(el("tr", null, td("No items yet: they are stored when the batch ends.", { colspan: 3, "class": "muted" })));
      job.itemsNext = answer.next;
      show($("items-more"), !!answer.next);
      show($("items-error"), false);
    } catch (error) {
      if (gen !== generation) return;
      clear($("items-body"));
      fail(error, $("items-error"));
    }
  }

  function askCancel() {
    var data = job.data || {};
    setText($("cancel-question"), data.job_type === "batch"
      ? "Ask the provider to cancel batch " + job.id + "? It ends cancelled at its next poll."
      : "Cancel job " + job.id + "? It ends with status cancelled and stop reason cancelled.");
    show($("cancel-confirm"), true);
    $("cancel-confirm-yes").focus();
  }

  async function cancelJob() {
    var gen = generation;
    var batch = job.data && job.data.job_type === "batch";
    show($("cancel-confirm"), false);
    $("cancel-job").disabled = true;
    hideBanners();
    try {
      await api("PATCH", (batch ? "v1/batches/" : "v1/jobs/") + path(job.id) + "/cancel");
      if (gen !== generation) return;
      notice(batch ? "Cancel requested: the batch ends cancelled at its next poll." : "The job was cancelled.");
    } catch (error) {
      if (gen !== generation) return;
      fail(error);
    }
    refreshJob();
  }

  async function redeliver() {
    var gen = generation;
    $("redeliver").disabled = true;
    hideBanners();
    try {
      var answer = (await api("POST", "v1/jobs/" + path(job.id) + "/callbacks/redeliver")).data || {};
      if (gen !== generation) return;
      notice("The webhook is queued for redelivery" + (answer.webhook_id ? " (webhook id " + answer.webhook_id + ")." : "."));
      // the attempt is made in the background: look again shortly
      [1500, 4000].forEach(function (ms) {
        window.setTimeout(function () { if (gen === generation) refreshJob(); }, ms);
      });
    } catch (error) {
      if (gen !== generation) return;
      fail(error);
    }
    refreshJob();
  }

  // ---- stats --------------------------------------------------------------------------

  function showStats(params) {
    var hours = params.get("hours") || "24";
    var type = params.get("job_type") || "";
    showView("stats-view", function () { loadStats(hours, type); });
    $("s-hours").value = hours;
    $("s-type").value = type;
    loadStats(hours, type);
  }

  async function loadStats(hours, type) {
    var gen = generation;
    try {
      var stats = (await api("GET", "v1/stats", { query: { hours: hours, job_type: type } })).data || {};
      if (gen !== generation) return;
      show($("stats-error"), false);
      renderStats(stats);
      show($("stats-body"), true);
    } catch (error) {
      if (gen !== generation) return;
      show($("stats-body"), false);
      fail(error, $("stats-error"));
    }
  }

  function number(v) { return typeof v === "number" && isFinite(v) ? v : 0; }

  function duration(ms) {
    if (ms === null || ms === undefined) return none();
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 120000) return (ms / 1000).toFixed(1) + " s";
    if (ms < 7200000) return (ms / 60000).toFixed(1) + " min";
    return (ms / 3600000).toFixed(1) + " h";
  }

  function renderStats(stats) {
    var counts = stats.counts || {};
    var body = $("stats-counts-body");
    clear(body);
    STATUSES.forEach(function (status) {
      body.appendChild(el("tr", { "data-status": status }, [td(badge(status)), td(String(number(counts[status])), { "class": "num" })]));
    });
    barChart($("stats-chart"), $("stats-chart-desc"), STATUSES.map(function (status) {
      return { label: status, value: number(counts[status]), cls: "status-" + status };
    }));
    var w = stats.window || {};
    var ended = ["completed", "failed", "cancelled", "expired"];
    barChart($("window-chart"), $("window-chart-desc"), ["created"].concat(ended).map(function (name) {
      return { label: name, value: number(w[name]), cls: "status-" + name };
    }));
    var callbacks = w.callbacks || {};
    var rate = w.completion_rate;
    var rows = [
      ["since", when(w.since)], ["until", when(w.until)],
      ["created", number(w.created)], ["completed", number(w.completed)], ["failed", number(w.failed)],
      ["cancelled", number(w.cancelled)], ["expired", number(w.expired)],
      ["completion rate", rate === null || rate === undefined ? none() : (100 * rate).toFixed(1) + " %"],
      ["average processing time", duration(w.avg_processing_ms)],
      ["webhooks delivered", number(callbacks.delivered)], ["webhooks failed", number(callbacks.failed)],
      ["average webhook latency", duration(callbacks.avg_latency_ms)]
    ];
    var list = $("stats-window");
    clear(list);
    rows.forEach(function (row) {
      list.appendChild(el("div", { "class": "field", "data-field": row[0] }, [el("dt", null, row[0]), el("dd", null, row[1])]));
    });
  }

  // A bar chart drawn as SVG elements (no library): one bar per entry, its value above it.
  function barChart(node, desc, entries) {
    Array.prototype.slice.call(node.childNodes).forEach(function (child) { if (child !== desc) node.removeChild(child); });
    var width = 560, height = 260, left = 44, right = 12, top = 20, bottom = 40;
    var plotW = width - left - right, plotH = height - top - bottom;
    var max = Math.max.apply(null, entries.map(function (e) { return e.value; }).concat([1]));
    var step = niceStep(max);
    var ceiling = Math.ceil(max / step) * step;
    node.setAttribute("viewBox", "0 0 " + width + " " + height);
    node.setAttribute("data-max", String(max));
    setText(desc, entries.map(function (e) { return e.label + ": " + e.value; }).join(", "));
    for (var tick = 0; tick <= ceiling; tick += step) {
      var y = top + plotH - (tick / ceiling) * plotH;
      node.appendChild(svg("line", { x1: left, x2: width - right, y1: y, y2: y, "class": "grid" }));
      node.appendChild(svg("text", { x: left - 6, y: y + 4, "class": "tick", "text-anchor": "end" }, String(tick)));
    }
    var slot = plotW / entries.length;
    var barW = Math.min(48, slot * 0.7);
    entries.forEach(function (e, i) {
      var h = ceiling ? (e.value / ceiling) * plotH : 0;
      var x = left + slot * i + (slot - barW) / 2;
      var y = top + plotH - h;
      node.appendChild(svg("rect", {
        x: x.toFixed(1), y: y.toFixed(1), width: barW.toFixed(1), height: Math.max(h, e.value ? 1 : 0).toFixed(1),
        "class": "bar " + e.cls, "data-testid": "bar", "data-label": e.label, "data-value": e.value
      }, svg("title", null, e.label + ": " + e.value)));
      node.appendChild(svg("text", { x: (x + barW / 2).toFixed(1), y: (y - 5).toFixed(1), "class": "value", "text-anchor": "middle" }, String(e.value)));
      node.appendChild(svg("text", { x: (x + barW / 2).toFixed(1), y: height - bottom + 16, "class": "label", "text-anchor": "middle" }, e.label));
    });
    node.appendChild(svg("line", { x1: left, x2: width - right, y1: top + plotH, y2: top + plotH, "class": "axis" }));
  }

  function niceStep(max) {
    var raw = max / 4;
    var power = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= raw) return Math.max(1, steps[i] * power);
    return Math.max(1, 10 * power);
  }

  // ---- bulk cancel --------------------------------------------------------------------

  var bulk = { body: null };

  function showBulk() {
    showView("bulk-view", null);
    show($("bulk-confirm"), false);
    show($("bulk-error"), false);
  }

  function bulkBody() {
    var body = {};
    var status = $("b-status").value, type = $("b-type").value, source = $("b-source").value;
    var created = isoFromInput($("b-created").value), limit = $("b-limit").value.trim();
    if (status) body.status = status;
    if (type) body.job_type = type;
    if (source) body.source_id = source;
    if (created) body.created_before = created;
    if (!Object.keys(body).length) return null;
    if (limit) body.limit = Number(limit);
    return body;
  }

  function reviewBulk() {
    show($("bulk-error"), false);
    show($("bulk-result"), false);
    var body = bulkBody();
    if (!body) {
      setText($("bulk-error"), "Fill in at least one of status, job type, source id or created before.");
      show($("bulk-error"), true);
      return;
    }
    bulk.body = body;
    var parts = [];
    parts.push(body.status ? "with status " + body.status : "in any active status");
    if (body.job_type) parts.push("of type " + body.job_type);
    if (body.source_id) parts.push("with source id \u201c" + body.source_id + "\u201d");
    if (body.created_before) parts.push("created before " + body.created_before);
    setText($("bulk-summary"), "Cancel up to " + (body.limit || 1000) + " active jobs " + parts.join(", ") + "? This cannot be undone.");
    show($("bulk-confirm"), true);
    $("bulk-confirm-yes").focus();
  }

  async function runBulk() {
    var gen = generation;
    show($("bulk-confirm"), false);
    $("bulk-confirm-yes").disabled = true;
    try {
      var answer = (await api("POST", "v1/jobs/cancel", { body: bulk.body })).data || {};
      if (gen !== generation) return;
      var ids = Array.isArray(answer.cancelled) ? answer.cancelled : [];
      setText($("bulk-count"), ids.length === 0 ? "No matching active job was found: nothing was cancelled."
        : "Cancelled " + ids.length + (ids.length === 1 ? " job." : " jobs."));
      var list = $("bulk-ids");
      clear(list);
      ids.forEach(function (id) { list.appendChild(el("li", { "data-testid": "bulk-id", "data-job-id": id }, jobLink(id))); });
      show($("bulk-more"), answer.more === true);
      show($("bulk-result"), true);
    } catch (error) {
      if (gen !== generation) return;
      fail(error, $("bulk-error"));
    } finally {
      $("bulk-confirm-yes").disabled = false;
    }
  }

  // ---- wiring -------------------------------------------------------------------------

  function wire() {
    $("key-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var key = $("api-key").value.trim();
      if (!key) return;
      try {
        window.sessionStorage.setItem(KEY_STORAGE, key);
      } catch (e) {
        setText($("key-error"), "This browser does not allow session storage; the console needs it to keep the key.");
        show($("key-error"), true);
        return;
      }
      $("api-key").value = "";
      show($("key-error"), false);
      if (!window.location.hash || window.location.hash === "#") window.location.hash = "#/jobs";
      route();
    });
    $("sign-out").addEventListener("click", function () { askForKey(""); });
    $("error-dismiss").addEventListener("click", function () { show($("error"), false); });
    $("auto-refresh").addEventListener("change", applyAutoRefresh);

    $("filters").addEventListener("submit", function (event) {
      event.preventDefault();
      var hash = filtersHash();
      if (window.location.hash === hash) showJobs(new URLSearchParams(hash.split("?")[1] || ""));
      else window.location.hash = hash;
    });
    $("clear-filters").addEventListener("click", function () {
      if (window.location.hash === "#/jobs") showJobs(new URLSearchParams(""));
      else window.location.hash = "#/jobs";
    });
    $("load-more").addEventListener("click", function () { loadJobs(false); });

    $("cancel-job").addEventListener("click", askCancel);
    $("cancel-confirm-yes").addEventListener("click", cancelJob);
    $("cancel-confirm-no").addEventListener("click", function () { show($("cancel-confirm"), false); $("cancel-job").focus(); });
    $("redeliver").addEventListener("click", redeliver);
    $("refresh-job").addEventListener("click", function () { hideBanners(); refreshJob(); loadMessages(true); });
    $("messages-more").addEventListener("click", function () { loadMessages(false); });
    $("callbacks-more").addEventListener("click", function () { loadCallbacks(false); });
    $("items-more").addEventListener("click", function () { loadItems(false); });

    $("stats-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var params = new URLSearchParams();
      params.set("hours", $("s-hours").value || "24");
      if ($("s-type").value) params.set("job_type", $("s-type").value);
      var hash = "#/stats?" + params.toString();
      if (window.location.hash === hash) showStats(params);
      else window.location.hash = hash;
    });

    $("bulk-form").addEventListener("submit", function (event) { event.preventDefault(); reviewBulk(); });
    $("bulk-confirm-yes").addEventListener("click", runBulk);
    $("bulk-confirm-no").addEventListener("click", function () { show($("bulk-confirm"), false); });
    $("bulk-again").addEventListener("click", function () { show($("bulk-result"), false); reviewBulk(); });

    window.addEventListener("hashchange", route);
  }

  wire();
  route();
})();
