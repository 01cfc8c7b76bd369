// The Switchyard console: a page over the admin API (/v1), nothing else.
//
// - The token is kept in sessionStorage (this tab, until it closes) and sent as a bearer
//   header; never in a URL or a cookie.
// - Everything a sender or a connector wrote (payloads, headers, log lines) is put in the
//   page as text nodes, never as HTML.
// - Views are addressed by the URL's hash: #/events, #/events/{id}, #/connectors,
//   #/destinations, #/activity, so the back button and a bookmark work.

const TOKEN = "switchyard.token";
const POLL_MS = 2000;
const PAGE = 50;
const STATUSES = ["pending", "retrying", "succeeded", "dead", "duplicate", "rejected"];

const $ = (id) => document.getElementById(id);

/** Builds an element: h("a", {href: "#"}, "text", child). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// ---------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const session = { access: null };

async function api(path, { method = "GET", body } = {}) {
  const token = sessionStorage.getItem(TOKEN);
  if (!token) throw new ApiError(401, "unauthorized", "sign in first");
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-cache",
    credentials: "omit",
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below
  }
  if (!response.ok) {
    const error = json?.error ?? {};
    const failure = new ApiError(
      response.status,
      error.code ?? "http_error",
      error.message ?? `HTTP ${response.status}`,
    );
    if (response.status === 401) signOut(failure.message);
    throw failure;
  }
  return json;
}

const query = (params) => {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
};

// ---------------------------------------------------------------------------------------
// Formatting

const time = (ms) => (ms ? new Date(ms).toLocaleString() : "–");
const isoMinute = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const ms = (n) => (n === undefined || n === null ? "–" : n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(2)} s`);
const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;

function badge(status) {
  return h("span", { class: `badge ${status}`, "data-status": status }, status);
}

function bodyText(body) {
  if (body === null || body === undefined) return "";
  if (typeof body === "object" && body.base64 !== undefined) return `(binary, base64) ${body.base64}`;
  return String(body);
}

function header(headers, name) {
  const found = (headers ?? []).find(([key]) => key.toLowerCase() === name);
  return found ? found[1] : undefined;
}

/** A body as the sender meant it: JSON pretty-printed, a form as a table, else as is. */
function prettyBody(body, contentType = "") {
  const text = bodyText(body);
  if (!text) return h("p", { class: "muted" }, "(empty body)");
  const type = contentType.toLowerCase();
  if (type.includes("json") || /^\s*[[{]/.test(text)) {
    try {
      return h("pre", { class: "code", "data-kind": "json" }, JSON.stringify(JSON.parse(text), null, 2));
    } catch {
      // not JSON after all
    }
  }
  if (type.includes("x-www-form-urlencoded")) {
    const rows = [...new URLSearchParams(text)].map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v)));
    return h("table", { class: "kv", "data-kind": "form" }, h("tbody", {}, rows));
  }
  return h("pre", { class: "code" }, text);
}

const SIGNATURE_HEADERS = [
  "stripe-signature", "webhook-signature", "svix-signature", "x-hub-signature-256",
  "x-mandrill-signature", "x-signature", "x-switchyard-signature",
];

function headerTable(headers, highlight = []) {
  if (!headers?.length) return h("p", { class: "muted" }, "(no headers)");
  return h("table", { class: "kv headers" }, h("tbody", {},
    headers.map(([name, value]) => h("tr", { class: highlight.includes(name.toLowerCase()) ? "signature" : undefined },
      h("th", { scope: "row" }, name), h("td", {}, value)))));
}

// ---------------------------------------------------------------------------------------
// Signing in and out

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN);
  session.access = null;
  stopPolling();
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("access").textContent = "";
  claimMain()();
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").value = "";
  $("token").focus();
}

async function signIn(token) {
  sessionStorage.setItem(TOKEN, token);
  try {
    const { access } = await api("/v1/session");
    session.access = access;
  } catch (error) {
    signOut(error.status === 401 ? "That token was refused." : error.message);
    return false;
  }
  $("login").hidden = true;
  $("nav").hidden = false;
  $("signout").hidden = false;
  $("access").textContent = session.access === "read" ? "read-only" : "";
  document.body.classList.toggle("read-only", session.access === "read");
  return true;
}

const canWrite = () => session.access === "admin";

// ---------------------------------------------------------------------------------------
// Polling: one timer for whichever view is showing; paused while the tab is hidden.

let pollTimer = null;
let pollTask = null;

let viewEpoch = 0;

/**
 * Makes the view about to be drawn the current one and returns the function that draws it
 * into `<main>`. An answer that arrives for an earlier view (a poll in flight when the
 * operator moved on) draws nothing: it must not paint over the view now shown.
 */
function claimMain() {
  const epoch = ++viewEpoch;
  return (...nodes) => {
    if (epoch === viewEpoch) $("main").replaceChildren(...nodes);
    return epoch === viewEpoch;
  };
}

function poll(task) {
  stopPolling();
  pollTask = task;
  const tick = async () => {
    if (pollTask !== task) return;
    if (!document.hidden) {
      try {
        await task();
      } catch (error) {
        if (error.status !== 401) console.warn("refresh failed", error);
      }
    }
    if (pollTask === task) pollTimer = setTimeout(tick, POLL_MS);
  };
  pollTimer = setTimeout(tick, POLL_MS);
}

function stopPolling() {
  clearTimeout(pollTimer);
  pollTask = null;
}

// ---------------------------------------------------------------------------------------
// Events

/** The filters of the events view, kept while moving between views. */
const filters = { connector: "", status: "", since: "", until: "", search: "" };

/** What the search box holds: an event id, an Idempotency-Key we sent, or a vendor key. */
function searchKind(text) {
  if (/^[0-9A-HJKMNP-TV-Z]{26}$/i.test(text)) return { id: text.toUpperCase() };
  if (/^[0-9A-HJKMNP-TV-Z]{26}-\d+$/i.test(text)) return { delivery_key: text };
  return { key: text };
}

const localToUnix = (value) => (value ? String(Math.floor(new Date(value).getTime() / 1000)) : "");

function listParams(extra = {}) {
  return {
    connector: filters.connector,
    status: filters.status,
    since: localToUnix(filters.since),
    until: localToUnix(filters.until),
    limit: PAGE,
    ...extra,
  };
}

async function eventsView(show) {
  const connectors = await api("/v1/connectors").catch(() => ({ data: [] }));
  const select = (id, label, options, value) => h("div", { class: "field" },
    h("label", { for: id }, label),
    h("select", { id, name: id }, h("option", { value: "" }, "all"),
      options.map((o) => h("option", { value: o, selected: o === value }, o))));
  const input = (id, label, type, value, extra = {}) => h("div", { class: "field" },
    h("label", { for: id }, label), h("input", { id, name: id, type, value, ...extra }));

  const form = h("form", { class: "filters", id: "filters", role: "search" },
    input("search", "Search", "search", filters.search, {
      placeholder: "evt_… vendor id, event id, or Idempotency-Key",
      size: 38,
    }),
    select("f-connector", "Connector", connectors.data.map((c) => c.id), filters.connector),
    select("f-status", "Status", STATUSES, filters.status),
    input("f-since", "Since", "datetime-local", filters.since),
    input("f-until", "Until", "datetime-local", filters.until),
    h("div", { class: "field buttons" },
      h("button", { type: "submit" }, "Apply"),
      h("button", { type: "button", class: "ghost", id: "clear", onclick: () => {
        Object.assign(filters, { connector: "", status: "", since: "", until: "", search: "" });
        route();
      } }, "Clear"),
      h("button", { type: "button", class: "ghost write", id: "bulk-open", onclick: openBulk }, "Replay matching…")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    filters.search = $("search").value.trim();
    filters.connector = $("f-connector").value;
    filters.status = $("f-status").value;
    filters.since = $("f-since").value;
    filters.until = $("f-until").value;
    route();
  });

  const rows = h("tbody", { id: "event-rows" });
  const table = h("table", { class: "events", "aria-describedby": "events-note" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Received"), h("th", { scope: "col" }, "Connector"),
      h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Vendor key"),
      h("th", { scope: "col" }, "Event id"), h("th", { scope: "col" }, "Attempts"))),
    rows);
  const note = h("p", { id: "events-note", class: "muted", role: "status", "aria-live": "polite" });
  const sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
  show(h("h1", {}, "Events"), form, note, table, sentinel);

  const shown = new Map();
  const row = (event) => {
    const link = h("a", { href: `#/events/${event.id}` }, event.id);
    const tr = h("tr", { "data-id": event.id },
      h("td", {}, time(event.received_at)), h("td", {}, event.connector),
      h("td", { class: "status" }, badge(event.status)), h("td", { class: "mono" }, event.dedupe_key ?? "–"),
      h("td", { class: "mono" }, link), h("td", { class: "num" }, event.attempts?.length ?? 0));
    tr.addEventListener("click", (e) => {
      if (e.target.tagName !== "A") location.hash = `#/events/${event.id}`;
    });
    shown.set(event.id, tr);
    return tr;
  };

  // A search: one lookup, no live list.
  if (filters.search) {
    const kind = searchKind(filters.search);
    let found = [];
    if (kind.id) {
      const event = await api(`/v1/events/${encodeURIComponent(kind.id)}`).catch((e) => {
        if (e.status === 404) return null;
        throw e;
      });
      if (event) found = [event];
    } else {
      found = (await api(`/v1/events${query(listParams(kind))}`)).data;
    }
    rows.replaceChildren(...found.map(row));
    if (found.length) {
      note.textContent = `${found.length} found for “${filters.search}”.`;
    } else {
      note.replaceChildren(`Nothing has the key “${filters.search}”. `,
        h("button", { type: "button", class: "link", id: "search-payloads", onclick: () => payloadSearch(filters.search, rows, note, row) },
          "Search the payloads for this text"));
    }
    return;
  }

  // The live list: pages on scroll, the first page refreshed while it shows.
  let cursor;
  let loading = false;
  let done = false;
  const more = async () => {
    if (loading || done) return;
    loading = true;
    try {
      const page = await api(`/v1/events${query(listParams({ cursor }))}`);
      for (const event of page.data) if (!shown.has(event.id)) rows.append(row(event));
      cursor = page.next_cursor;
      done = !cursor;
      note.textContent = shown.size ? (done ? `${shown.size} events.` : `${shown.size} events shown; scroll for more.`) : "No events match.";
    } finally {
      loading = false;
    }
  };
  await more();
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) more();
  });
  observer.observe(sentinel);

  poll(async () => {
    if (!document.body.contains(rows)) return;
    const page = await api(`/v1/events${query(listParams())}`);
    const fresh = [];
    for (const event of page.data) {
      const existing = shown.get(event.id);
      if (existing) {
        existing.querySelector(".status").replaceChildren(badge(event.status));
        existing.lastChild.textContent = event.attempts?.length ?? 0;
      } else {
        const tr = row(event);
        tr.classList.add("new");
        fresh.push(tr);
      }
    }
    if (fresh.length) {
      rows.prepend(...fresh);
      note.textContent = `${fresh.length} new event${fresh.length === 1 ? "" : "s"}.`;
    }
  });
}

/** The `q` search: payload text, a bounded scan per call, continued by cursor. */
async function payloadSearch(text, rows, note, row, cursor) {
  note.textContent = "Searching payloads…";
  const page = await api(`/v1/events${query(listParams({ q: text, cursor }))}`);
  if (!cursor) rows.replaceChildren();
  rows.append(...page.data.map(row));
  const count = rows.children.length;
  note.replaceChildren(`${count} event${count === 1 ? "" : "s"} with “${text}” in the payload. `);
  if (page.next_cursor) {
    note.append(h("button", { type: "button", class: "link", onclick: () => payloadSearch(text, rows, note, row, page.next_cursor) }, "Search further back"));
  }
}

// ---------------------------------------------------------------------------------------
// One event

async function eventView(id, show) {
  const render = (event) => {
    const request = event.request;
    const contentType = header(request?.headers, "content-type") ?? "";
    const signatureHeaders = (request?.headers ?? []).map(([n]) => n.toLowerCase()).filter((n) => SIGNATURE_HEADERS.includes(n));
    const v = event.verification ?? {};
    const replayable = ["succeeded", "dead"].includes(event.status);

    const replay = h("form", { class: "replay write", id: "replay-form" },
      h("fieldset", {}, h("legend", {}, "Replay"),
        h("label", {}, h("input", { type: "radio", name: "keys", value: "same", checked: true }), " Same Idempotency-Keys"),
        h("label", {}, h("input", { type: "radio", name: "keys", value: "new" }), " New keys"),
        h("button", { type: "submit", id: "replay", disabled: !replayable, title: replayable ? undefined : "Only succeeded and dead events can be replayed" }, "Replay"),
        h("span", { id: "replay-status", role: "status", "aria-live": "polite" })));
    replay.addEventListener("submit", async (e) => {
      e.preventDefault();
      const newKeys = replay.elements.keys.value === "new";
      const status = $("replay-status");
      try {
        const answer = await api(`/v1/events/${encodeURIComponent(id)}/replay`, { method: "POST", body: { new_keys: newKeys } });
        status.textContent = `Replaying: ${answer.status}.`;
        refresh();
      } catch (error) {
        status.textContent = error.message;
      }
    });

    const attempts = (event.attempts ?? []).map((a) => h("li", { class: "attempt", "data-attempt": a.number },
      h("h4", {}, `Attempt ${a.number} · `, h("span", { class: "outcome" }, a.outcome), ` · ${ms(a.duration_ms)} · ${time(a.at)}`),
      h("p", { class: "muted mono" }, `plugin ${a.plugin_version} ${a.plugin_digest}`, a.deliveries ? ` · ${a.deliveries} deliveries` : "", a.memory_bytes ? ` · ${mib(a.memory_bytes)} memory` : ""),
      a.message ? h("p", { class: "message" }, a.message) : null,
      a.logs?.length ? h("ol", { class: "logs" }, a.logs.map((l) => h("li", { class: `log ${l.level}` }, h("span", { class: "level" }, l.level), " ", l.message))) : null,
      a.fetches?.length ? h("div", {}, h("h5", {}, "Fetches"), h("ul", { class: "fetches" }, a.fetches.map((f) =>
        h("li", {}, h("code", {}, `${f.request.method} ${f.request.url}`), ` → ${f.status ?? f.error ?? "?"} · ${ms(f.duration_ms)}`)))) : null));

    const deliveries = (event.deliveries ?? []).map((d) => h("li", { class: "delivery", "data-key": d.idempotency_key },
      h("h4", {}, h("code", {}, `${d.request.method} ${d.request.url}`), " ", badge(d.status)),
      h("p", { class: "muted" }, "Idempotency-Key ", h("code", { class: "idempotency-key" }, d.idempotency_key)),
      h("details", {}, h("summary", {}, "Request"), headerTable(d.request.headers), prettyBody(d.request.body, header(d.request.headers, "content-type") ?? "")),
      h("ol", { class: "tries" }, (d.attempts ?? []).map((t) => h("li", { class: "try" },
        h("p", {}, `Try ${t.number} · ${time(t.at)} · ${ms(t.duration_ms)} · `,
          t.response ? h("strong", {}, `HTTP ${t.response.status}`)
            : t.detail ? h("strong", {}, t.detail)
              : h("strong", { class: "error" }, t.error ?? "no answer")),
        t.response ? h("details", {}, h("summary", {}, "Response"), headerTable(t.response.headers), prettyBody(t.response.body, header(t.response.headers, "content-type") ?? "")) : null)))));

    return [
      h("p", {}, h("a", { href: "#/events" }, "← Events")),
      h("h1", {}, "Event ", h("code", { id: "event-id" }, event.id)),
      h("dl", { class: "facts" },
        h("dt", {}, "Connector"), h("dd", {}, event.connector),
        h("dt", {}, "Status"), h("dd", { id: "event-status" }, badge(event.status)),
        h("dt", {}, "Received"), h("dd", {}, time(event.received_at)),
        h("dt", {}, "Dedupe key"), h("dd", { class: "mono" }, event.dedupe_key ?? "–"),
        event.duplicate_of ? [h("dt", {}, "Duplicate of"), h("dd", {}, h("a", { href: `#/events/${event.duplicate_of}` }, event.duplicate_of))] : null,
        event.next_attempt_at ? [h("dt", {}, "Next attempt"), h("dd", {}, time(event.next_attempt_at))] : null,
        event.error ? [h("dt", {}, "Error"), h("dd", { class: "error" }, event.error)] : null),
      canWrite() ? replay : null,
      h("section", { "aria-labelledby": "h-request" },
        h("h2", { id: "h-request" }, "Request as received"),
        request ? [
          h("p", { class: "mono" }, `${request.method} ${request.path}${request.query ? `?${request.query}` : ""}`),
          h("p", { id: "verification", class: v.verified ? "ok" : "error" },
            `Signature (${v.scheme ?? "?"}): `, v.verified ? "verified" : `not verified${v.error ? ` — ${v.error}` : ""}`),
          headerTable(request.headers, signatureHeaders),
          h("div", { id: "request-body" }, prettyBody(request.body, contentType)),
        ] : h("p", { class: "muted" }, "The request is no longer stored.")),
      h("section", { "aria-labelledby": "h-attempts" },
        h("h2", { id: "h-attempts" }, `Connector attempts (${attempts.length})`),
        attempts.length ? h("ol", { class: "attempts", id: "attempts" }, attempts) : h("p", { class: "muted" }, "Not handed to the connector yet.")),
      h("section", { "aria-labelledby": "h-deliveries" },
        h("h2", { id: "h-deliveries" }, `Deliveries (${deliveries.length})`),
        deliveries.length ? h("ol", { class: "deliveries", id: "deliveries" }, deliveries) : h("p", { class: "muted" }, "None.")),
    ];
  };

  let last = "";
  const refresh = async () => {
    const event = await api(`/v1/events/${encodeURIComponent(id)}`);
    const signature = JSON.stringify(event);
    if (signature === last) return;
    last = signature;
    // Keep the open <details> and the keys choice across a refresh.
    const open = [...$("main").querySelectorAll("details[open]")].map((d) => d.closest("[data-key]")?.dataset.key);
    const keys = $("replay-form")?.elements.keys.value;
    const status = $("replay-status")?.textContent;
    if (!show(...render(event).flat().filter(Boolean))) return;
    if (keys) $("replay-form").elements.keys.value = keys;
    if (status) $("replay-status").textContent = status;
    for (const key of open) $("main").querySelector(`[data-key="${CSS.escape(key ?? "")}"] details`)?.setAttribute("open", "");
  };
  try {
    await refresh();
  } catch (error) {
    if (error.status === 404) {
      show(h("p", {}, h("a", { href: "#/events" }, "← Events")), h("h1", {}, "No such event"), h("p", {}, `No event has the id ${id}.`));
      return;
    }
    throw error;
  }
  poll(refresh);
}

// ---------------------------------------------------------------------------------------
// Bulk replay of what the filters match

let bulkRunning = false;

function openBulk() {
  const parts = [
    filters.connector && `connector ${filters.connector}`,
    filters.status && `status ${filters.status}`,
    filters.since && `since ${filters.since}`,
    filters.until && `until ${filters.until}`,
  ].filter(Boolean);
  $("bulk-filter").textContent = `Every succeeded or dead event${parts.length ? ` with ${parts.join(", ")}` : ""} goes back to its connector.`;
  $("bulk-status").textContent = "";
  $("bulk-progress").hidden = true;
  $("bulk-start").disabled = false;
  $("bulk").showModal();
}

async function runBulk() {
  if (bulkRunning) return;
  bulkRunning = true;
  $("bulk-start").disabled = true;
  const progress = $("bulk-progress");
  progress.hidden = false;
  progress.removeAttribute("value");
  const newKeys = $("bulk-form").elements["bulk-keys"].value === "new";
  const params = listParams();
  const body = { new_keys: newKeys, limit: 200 };
  for (const key of ["connector", "status", "since", "until"]) if (params[key]) body[key] = params[key];
  let replayed = 0;
  let read = 0;
  try {
    for (;;) {
      const answer = await api("/v1/replay", { method: "POST", body });
      replayed += answer.replayed;
      read += answer.read;
      $("bulk-status").textContent = `Read ${read}, replayed ${replayed}…`;
      if (!answer.next_cursor || !$("bulk").open) break;
      body.cursor = answer.next_cursor;
    }
    progress.max = 1;
    progress.value = 1;
    $("bulk-status").textContent = `Done: read ${read}, replayed ${replayed}.`;
  } catch (error) {
    $("bulk-status").textContent = `Stopped after ${replayed} replayed: ${error.message}`;
  } finally {
    bulkRunning = false;
  }
}

// ---------------------------------------------------------------------------------------
// Connectors

async function connectorsView(show) {
  const render = (list) => {
    const counts = (c) => {
      if (!c.counts) return h("p", { class: "muted" }, "Counts unavailable on this store.");
      const row = (label, n) => h("tr", {}, h("th", { scope: "row" }, label), STATUSES.map((s) => h("td", { class: "num", "data-status": s }, n[s])));
      return h("table", { class: "counts" },
        h("thead", {}, h("tr", {}, h("td"), STATUSES.map((s) => h("th", { scope: "col" }, s)))),
        h("tbody", {}, row("retention", c.counts.retention), row("last 24 h", c.counts.last_24h)));
    };
    const state = (c) => !c.enabled ? "disabled" : c.last_error && !c.digest ? "load error" : c.paused ? "paused" : "running";
    const action = (c, verb, label) => h("button", {
      type: "button", class: "write", "data-action": verb, onclick: async (e) => {
        e.target.disabled = true;
        try {
          await api(`/v1/connectors/${encodeURIComponent(c.id)}/${verb}`, { method: "POST" });
        } catch (error) {
          alert(error.message);
        }
        refresh();
      },
    }, label);
    return list.data.map((c) => h("article", { class: "connector", "data-connector": c.id, "aria-labelledby": `c-${c.id}` },
      h("header", {}, h("h2", { id: `c-${c.id}` }, c.id), h("span", { class: `badge ${state(c).replace(" ", "-")}`, "data-state": state(c) }, state(c))),
      h("dl", { class: "facts" },
        h("dt", {}, "Plugin"), h("dd", {}, `${c.plugin}${c.name ? ` (${c.name} ${c.version})` : ""}`),
        h("dt", {}, "Digest"), h("dd", { class: "mono" }, c.digest ?? "–"),
        h("dt", {}, "Scheme"), h("dd", {}, c.scheme ?? "–"),
        h("dt", {}, "Loaded"), h("dd", {}, time(c.loaded_at)),
        c.last_error ? [h("dt", {}, "Load error"), h("dd", { class: "error" }, c.last_error)] : null,
        c.last_delivery_error ? [h("dt", {}, "Last delivery error"), h("dd", { class: "error" }, [`${c.last_delivery_error.error} at ${time(c.last_delivery_error.at)}, event `, h("a", { href: `#/events/${c.last_delivery_error.event_id}` }, c.last_delivery_error.event_id)])] : null),
      counts(c),
      canWrite() && c.enabled ? h("div", { class: "actions" },
        c.paused ? action(c, "resume", "Resume") : action(c, "pause", "Pause"),
        action(c, "reload", "Reload")) : null));
  };
  const refresh = async () => {
    const list = await api("/v1/connectors");
    const children = [h("h1", {}, "Connectors")];
    if (list.config_error) children.push(h("p", { class: "error", role: "alert" }, `The newest config was refused: ${list.config_error}`));
    show(...children, ...render(list));
  };
  await refresh();
  poll(refresh);
}

// ---------------------------------------------------------------------------------------
// Destinations: each one's circuit, limits and tries on this host.

async function destinationsView(show) {
  const render = (list) => list.data.map((d) => {
    const state = d.state === "disabled" ? `disabled (${d.disabled})` : d.state.replace("_", "-");
    const action = (verb, label) => h("button", {
      type: "button", class: "write", "data-action": verb, onclick: async (e) => {
        e.target.disabled = true;
        try {
          await api(`/v1/destinations/${encodeURIComponent(d.id)}/${verb}`, { method: "POST" });
        } catch (error) {
          alert(error.message);
        }
        refresh();
      },
    }, label);
    return h("article", { class: "connector destination", "data-destination": d.id, "aria-labelledby": `d-${d.id}` },
      h("header", {}, h("h2", { id: `d-${d.id}` }, d.id), h("span", { class: `badge ${d.state.replace("_", "-")}`, "data-state": d.state }, state)),
      h("dl", { class: "facts" },
        h("dt", {}, "URL"), h("dd", { class: "mono" }, d.url),
        h("dt", {}, "Limits"), h("dd", {}, `${d.rate_limit ? `${d.rate_limit}/s` : "no rate limit"}, ${d.max_concurrency ? `${d.max_concurrency} at once` : "no concurrency limit"}`),
        h("dt", {}, "Now"), h("dd", {}, `${d.in_flight} in flight, ${d.waiting} waiting`),
        h("dt", {}, "Tries"), h("dd", { class: "counts" }, `${d.counts.succeeded} succeeded, ${d.counts.failed} failed, ${d.counts.deferred} deferred`),
        d.open_since ? [h("dt", {}, "Open since"), h("dd", {}, time(d.open_since))] : null,
        d.next_probe_at ? [h("dt", {}, "Next probe"), h("dd", {}, time(d.next_probe_at))] : null,
        d.last_error ? [h("dt", {}, "Last error"), h("dd", { class: "error" }, `${d.last_error.error} at ${time(d.last_error.at)}`)] : null),
      canWrite() ? h("div", { class: "actions" },
        d.state === "disabled" ? action("enable", "Enable") : action("disable", "Disable")) : null);
  });
  const refresh = async () => {
    const list = await api("/v1/destinations");
    const intro = list.data.length ? [] : [h("p", { class: "muted" }, "No [[destination]] is configured.")];
    show(h("h1", {}, "Destinations"), ...intro, ...render(list));
  };
  await refresh();
  poll(refresh);
}

// ---------------------------------------------------------------------------------------
// Activity: webhooks per bucket by outcome, and delivery latency, drawn as SVG.

let activityWindow = "1h";
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children.flat(Infinity)) {
    if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function barChart(buckets, series, { title, unit }) {
  const width = 720;
  const height = 200;
  const pad = { left: 56, right: 8, top: 10, bottom: 24 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const totals = buckets.map((b) => series.reduce((sum, s) => sum + s.value(b), 0));
  const max = Math.max(1, ...totals);
  const step = innerW / buckets.length;
  const y = (v) => pad.top + innerH - (v / max) * innerH;
  const grid = [0, 0.5, 1].map((f) => [
    svg("line", { x1: pad.left, x2: width - pad.right, y1: y(max * f), y2: y(max * f), class: "grid" }),
    svg("text", { x: pad.left - 6, y: y(max * f) + 4, class: "axis", "text-anchor": "end" }, Math.round(max * f)),
  ]);
  const bars = buckets.map((b, i) => {
    let base = 0;
    const rects = series.map((s) => {
      const v = s.value(b);
      if (!v) return null;
      const rect = svg("rect", { x: pad.left + i * step + 0.5, width: Math.max(1, step - 1), y: y(base + v), height: y(base) - y(base + v), class: `bar ${s.name}` },
        svg("title", {}, `${isoMinute(b.at)}: ${v} ${s.name}`));
      base += v;
      return rect;
    });
    return rects;
  });
  const labels = [0, Math.floor(buckets.length / 2), buckets.length - 1].map((i) =>
    svg("text", { x: pad.left + i * step, y: height - 6, class: "axis" }, isoMinute(buckets[i].at)));
  const total = totals.reduce((a, b) => a + b, 0);
  return h("figure", { class: "chart" },
    svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: ${total} ${unit} in the window` }, grid, bars, labels),
    h("figcaption", {}, h("strong", {}, title), " ", series.map((s) => h("span", { class: `key ${s.name}` }, s.name))));
}

function lineChart(buckets, lines, { title }) {
  const width = 720;
  const height = 200;
  const pad = { left: 56, right: 8, top: 10, bottom: 24 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const max = Math.max(1, ...buckets.flatMap((b) => lines.map((l) => l.value(b) ?? 0)));
  const step = innerW / Math.max(1, buckets.length - 1);
  const y = (v) => pad.top + innerH - (v / max) * innerH;
  const paths = lines.map((l) => {
    let d = "";
    let pen = false;
    buckets.forEach((b, i) => {
      const v = l.value(b);
      if (v === undefined || v === null) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${(pad.left + i * step).toFixed(1)},${y(v).toFixed(1)} `;
      pen = true;
    });
    // A dot per bucket too: a minute with deliveries between idle ones is a point, not a line.
    const dots = buckets.map((b, i) => {
      const v = l.value(b);
      if (v === undefined || v === null) return null;
      return svg("circle", { cx: (pad.left + i * step).toFixed(1), cy: y(v).toFixed(1), r: 3, class: `dot ${l.name}` },
        svg("title", {}, `${isoMinute(b.at)}: ${l.name} ≤ ${ms(v)}`));
    });
    return [svg("path", { d: d || "M0,0", class: `line ${l.name}` }), dots];
  });
  const grid = [0, 0.5, 1].map((f) => [
    svg("line", { x1: pad.left, x2: width - pad.right, y1: y(max * f), y2: y(max * f), class: "grid" }),
    svg("text", { x: pad.left - 6, y: y(max * f) + 4, class: "axis", "text-anchor": "end" }, ms(Number((max * f).toPrecision(2)))),
  ]);
  const labels = [0, Math.floor(buckets.length / 2), buckets.length - 1].map((i) =>
    svg("text", { x: pad.left + i * step, y: height - 6, class: "axis" }, isoMinute(buckets[i].at)));
  return h("figure", { class: "chart" },
    svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title }, grid, paths, labels),
    h("figcaption", {}, h("strong", {}, title), " ", lines.map((l) => h("span", { class: `key ${l.name}` }, l.name))));
}

async function activityView(show) {
  const refresh = async () => {
    const report = await api(`/v1/activity${query({ window: activityWindow })}`);
    const per = report.step_seconds === 60 ? "minute" : `${report.step_seconds / 60} minutes`;
    const w = report.total.webhooks;
    const d = report.total.deliveries;
    const choose = h("div", { class: "segmented", role: "group", "aria-label": "Window" },
      ["1h", "24h"].map((name) => h("button", { type: "button", "aria-pressed": String(name === activityWindow), "data-window": name, onclick: () => { activityWindow = name; refresh(); } }, name === "1h" ? "Last hour" : "Last 24 hours")));
    show(
      h("h1", {}, "Activity"),
      choose,
      h("p", { class: "muted" }, `This host since ${time(report.started_at)}, by the ${per}. `,
        "The event log keeps the full record."),
      h("dl", { class: "facts totals", id: "totals" },
        h("dt", {}, "Webhooks"), h("dd", {}, `${w.accepted} accepted · ${w.duplicate} duplicate · ${w.rejected} rejected · ${w.failed} failed`),
        h("dt", {}, "Delivery attempts"), h("dd", {}, `${d.succeeded} succeeded · ${d.retrying} retrying · ${d.dead} dead`),
        h("dt", {}, "Delivery latency"), h("dd", {}, report.total.latency_ms ? `p50 ≤ ${ms(report.total.latency_ms.p50)} · p99 ≤ ${ms(report.total.latency_ms.p99)}` : "–")),
      barChart(report.buckets, ["accepted", "duplicate", "rejected", "failed"].map((name) => ({ name, value: (b) => b.webhooks[name] })), { title: `Webhooks per ${per}`, unit: "webhooks" }),
      barChart(report.buckets, ["succeeded", "retrying", "dead"].map((name) => ({ name, value: (b) => b.deliveries[name] })), { title: `Delivery attempts per ${per}`, unit: "attempts" }),
      lineChart(report.buckets, ["p50", "p99"].map((name) => ({ name, value: (b) => b.latency_ms?.[name] })), { title: "Delivery latency" }));
  };
  await refresh();
  poll(refresh);
}

// ---------------------------------------------------------------------------------------
// Routing

async function route() {
  if (!sessionStorage.getItem(TOKEN)) return signOut();
  stopPolling();
  const show = claimMain();
  const [, view = "events", id] = location.hash.split("/");
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    if (view === "events" && id) await eventView(decodeURIComponent(id), show);
    else if (view === "connectors") await connectorsView(show);
    else if (view === "destinations") await destinationsView(show);
    else if (view === "activity") await activityView(show);
    else await eventsView(show);
  } catch (error) {
    if (error.status !== 401) {
      show(h("p", { class: "error", role: "alert" }, `Could not load this view: ${error.message}`));
    }
  }
}

// ---------------------------------------------------------------------------------------
// Start

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

applyTheme(localStorage.getItem("switchyard.theme"));

$("theme").addEventListener("click", () => {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : matchMedia("(prefers-color-scheme: dark)").matches;
  const next = dark ? "light" : "dark";
  localStorage.setItem("switchyard.theme", next);
  applyTheme(next);
});

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (await signIn($("token").value.trim())) route();
});
$("signout").addEventListener("click", () => signOut());
$("bulk-start").addEventListener("click", runBulk);
$("bulk-close").addEventListener("click", () => $("bulk").close());
$("bulk").addEventListener("close", () => { if (document.querySelector("#event-rows")) route(); });
window.addEventListener("hashchange", route);

if (sessionStorage.getItem(TOKEN)) {
  signIn(sessionStorage.getItem(TOKEN)).then((ok) => ok && route());
} else {
  signOut();
}
