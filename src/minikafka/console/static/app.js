// minikafka console: a hash-routed page over the broker's /api, kept live by /api/stream (SSE).
// Record contents are untrusted, so the DOM is built with textContent only (never innerHTML).
"use strict";

// --- helpers ------------------------------------------------------------------------------------

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, options);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = Array.isArray(data.detail) ? data.detail.map((d) => d.msg).join("; ") : data.detail;
    const err = new Error(data.error || detail || `${response.status} ${response.statusText}`);
    err.status = response.status;
    throw err;
  }
  return data;
}

const enc = encodeURIComponent;
const nf = new Intl.NumberFormat("en-US");
// A remote cluster does not tell everything (bytes on disk, uptime…): null shows as "—".
const UNKNOWN = "—";
const fmtNum = (n) => (n === null || n === undefined ? UNKNOWN : nf.format(Math.round(n)));
function fmtBytes(n) {
  if (n === null || n === undefined) return UNKNOWN;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
function fmtRate(n) { return n >= 100 ? fmtNum(n) : n.toFixed(1); }
function fmtDuration(s) {
  if (s === null || s === undefined) return UNKNOWN;
  s = Math.floor(s);
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60), ss = s % 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  return mm ? `${mm}m ${ss}s` : `${ss}s`;
}
// ISO 8601 in UTC ("…Z"): the same instant whatever the browser's zone (its local time on hover).
function fmtTime(ms) {
  if (ms === null || ms < 0) return "—";
  return new Date(ms).toISOString();
}
function timeNode(ms) {
  return h("span", { class: "mono ts", title: ms === null || ms < 0 ? null
    : new Date(ms).toString() }, fmtTime(ms));
}
function fmtRetention(ms) {
  if (ms < 0) return "forever";
  for (const [unit, size] of [["d", 86400000], ["h", 3600000], ["m", 60000], ["s", 1000]]) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms} ms`;
}
const RETENTIONS = [["1 hour", 3600000], ["1 day", 86400000], ["7 days", 604800000],
  ["30 days", 2592000000], ["forever", -1]];

function toast(message, isError) {
  const el = h("div", { class: "toast" + (isError ? " error" : ""), role: "status" }, message);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), isError ? 7000 : 4000);
}

// Run an action, report its error as a toast; returns whether it succeeded.
async function attempt(action, success) {
  try {
    await action();
    if (success) toast(success);
    return true;
  } catch (err) {
    toast(err.message, true);
    return false;
  }
}

function confirmDialog(title, text, okLabel) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

function card(label, value, sub, id, wide) {
  return h("div", { class: wide ? "card wide" : "card", "data-card": id || label },
    h("div", { class: "label" }, label), h("div", { class: "value" }, value),
    sub ? h("div", { class: "sub" }, sub) : null);
}

function table(headers, rows, emptyText) {
  const head = h("tr", {}, headers.map((x) => h("th", { class: x.num ? "num" : "" }, x.label ?? x)));
  const body = rows.length ? rows
    : [h("tr", {}, h("td", { class: "empty", colSpan: headers.length }, emptyText))];
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
}
const num = (label) => ({ label, num: true });

function badge(state) { return h("span", { class: `badge ${state}` }, state); }

// JSON pretty-printed with colours, built from text nodes.
function jsonNode(text) {
  const pretty = JSON.stringify(JSON.parse(text), null, 2);
  const pre = h("pre", { class: "value" });
  const token = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
  let last = 0;
  for (const m of pretty.matchAll(token)) {
    pre.append(pretty.slice(last, m.index));
    const cls = m[1] ? (m[2] ? "j-key" : "j-str") : m[3] ? "j-lit" : "j-num";
    pre.append(h("span", { class: cls }, m[1] || m[0]));
    if (m[2]) pre.append(m[2]);
    last = m.index + m[0].length;
  }
  pre.append(pretty.slice(last));
  return pre;
}

function valueNode(text) {
  if (text === null) return h("span", { class: "null" }, "null");
  const trimmed = text.trim();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    try { return jsonNode(trimmed); } catch (_) { /* not JSON: shown as text */ }
  }
  return h("pre", { class: "value" }, text);
}

// A value written with a registered schema: decoded, under its schema id, subjects and type; else
// as it is.
function schemaChip(s) {
  const label = `schema ${s.id} · ${s.subjects.join(", ") || "no subject"} · ${s.type}`;
  return h("span", { class: "chip schema", title: s.error || "decoded with this schema" },
    s.error ? `${label} · not decoded: ${s.error}` : label);
}

function recordValue(r) {
  const s = r.schema;
  if (!s) return valueNode(r.value);
  return h("div", { class: "decoded" }, schemaChip(s), s.error ? valueNode(r.value) : jsonNode(s.value));
}

// --- live state (SSE) ---------------------------------------------------------------------------

const live = { data: null, history: [], listeners: new Set() };
const HISTORY = 300;  // seconds drawn: the broker keeps as many

function connectLive() {
  const source = new EventSource("/api/stream");
  const dot = document.getElementById("live-dot"), text = document.getElementById("live-text");
  source.onopen = () => { dot.classList.add("on"); text.textContent = "live"; };
  source.onerror = () => { dot.classList.remove("on"); text.textContent = "reconnecting…"; };
  source.onmessage = (event) => {
    live.data = JSON.parse(event.data);
    if (live.data.history) live.history = live.data.history.slice(-HISTORY);  // the first event
    live.history.push(live.data.rates);
    if (live.history.length > HISTORY) live.history.shift();
    document.getElementById("broker-address").textContent = live.data.broker;
    document.getElementById("metrics-link").hidden = !!live.data.remote;  // its brokers' own
    for (const listener of live.listeners) listener(live.data);
  };
}

// A page's load failed: a missing thing is the Not-found page, anything else is said in place.
function failed(view) {
  return (err) => (err.status === 404 ? notFound(view, err.message)
    : view.replaceChildren(h("div", { class: "panel empty" }, err.message)));
}

// --- pages --------------------------------------------------------------------------------------

function overviewPage(view) {
  const cards = h("div", { class: "cards" });
  const canvas = h("canvas", { class: "chart", id: "throughput" });
  const topics = h("div");
  view.append(cards,
    h("div", { class: "panel" }, h("h2", {}, "Throughput, messages per second"),
      h("div", { class: "legend" }, h("span", {}, h("i", { style: "background:#2563eb" }), "in"),
        h("span", {}, h("i", { style: "background:#16a34a" }), "out")), canvas),
    h("div", { class: "panel" }, h("h2", {}, "Topics"), topics));
  return (d) => {
    cards.replaceChildren(
      card("Broker", d.broker, `cluster ${d.cluster_id} · node ${d.node_id}`, "broker", true),
      card("Uptime", fmtDuration(d.uptime_s), d.flush ? `flush: ${d.flush}` : null, "uptime"),
      card("Topics", fmtNum(d.topics), `${fmtNum(d.partitions)} partitions`, "topics"),
      card("Messages stored", fmtNum(d.messages), fmtBytes(d.size) + " on disk", "messages"),
      card("Messages in / s", fmtRate(d.rates.records_in),
        d.remote ? "from the end offsets" : fmtBytes(d.rates.bytes_in) + "/s", "in"),
      d.remote ? card("Messages out / s", UNKNOWN, "not known over the admin API", "out")
        : card("Messages out / s", fmtRate(d.rates.records_out), fmtBytes(d.rates.bytes_out) + "/s",
          "out"),
      card("Connections", fmtNum(d.connections), null, "connections"),
      card("Consumer groups", fmtNum(d.groups), null, "groups"),
      card("Open transactions", fmtNum(d.open_transactions), null, "transactions"));
    drawChart(canvas, live.history);
    topics.replaceChildren(topicTable(d.topic_list));
  };
}

function drawChart(canvas, history) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  const max = Math.max(1, ...history.map((r) => Math.max(r.records_in, r.records_out)));
  g.strokeStyle = "#e3e7ef";
  g.fillStyle = "#6b7588";
  g.font = "11px system-ui, sans-serif";
  for (let i = 0; i <= 3; i++) {
    const y = 8 + (height - 20) * (i / 3);
    g.beginPath(); g.moveTo(40, y); g.lineTo(width, y); g.stroke();
    g.fillText(fmtRate(max * (1 - i / 3)), 0, y + 4);
  }
  for (const [field, colour] of [["records_in", "#2563eb"], ["records_out", "#16a34a"]]) {
    g.strokeStyle = colour;
    g.lineWidth = 2;
    g.beginPath();
    history.forEach((r, i) => {
      const x = 40 + (width - 40) * (i / (HISTORY - 1));
      const y = 8 + (height - 20) * (1 - r[field] / max);
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
  }
}

function offsetsSummary(partitions) {
  const shown = partitions.slice(0, 3).map((p) =>
    h("span", { class: "chip" }, `${p.partition}: ${fmtNum(p.start_offset)}–${fmtNum(p.end_offset)}`));
  return partitions.length > 3 ? [...shown, h("span", { class: "muted" }, "…")] : shown;
}

function topicTable(topics) {
  return table(["Topic", num("Partitions"), num("Messages"), "Offsets (partition: start–end)",
    num("Size"), "Retention", ""],
  topics.map((t) => h("tr", { "data-topic": t.name },
    h("td", {}, h("a", { href: `#/topics/${enc(t.name)}` }, t.name)),
    h("td", { class: "num" }, t.partitions.length),
    h("td", { class: "num" }, fmtNum(t.messages)),
    h("td", {}, offsetsSummary(t.partitions)),
    h("td", { class: "num" }, fmtBytes(t.size)),
    h("td", {}, fmtRetention(t.retention_ms)),
    h("td", {}, h("a", { href: `#/messages?topic=${enc(t.name)}` }, "Browse")))),
  "No topics yet.");
}

function retentionSelect(id, current) {
  const select = h("select", { id });
  for (const [label, ms] of RETENTIONS) {
    select.append(h("option", { value: String(ms), selected: ms === current }, label));
  }
  if (current !== undefined && !RETENTIONS.some(([, ms]) => ms === current)) {
    select.append(h("option", { value: String(current), selected: true }, fmtRetention(current)));
  }
  return select;
}

function topicsPage(view) {
  const name = h("input", { id: "new-topic-name", placeholder: "orders", required: true });
  const partitions = h("input", { id: "new-topic-partitions", type: "number", min: "1", value: "1",
    style: "width:90px" });
  const retention = retentionSelect("new-topic-retention", 604800000);
  const create = async (event) => {
    event.preventDefault();
    const topic = name.value.trim();
    const ok = await attempt(() => api("POST", "/api/topics", {
      name: topic, partitions: Number(partitions.value),
      configs: { "retention.ms": retention.value },
    }), `Created topic ${topic}`);
    if (ok) { name.value = ""; render(); }
  };
  const list = h("div");
  // Offered only to a user the ACLs let create topics.
  const form = h("form", { class: "panel", id: "create-topic", hidden: true, onsubmit: create },
    h("h2", {}, "Create a topic"),
    h("div", { class: "row" }, h("label", {}, "Name", name), h("label", {}, "Partitions", partitions),
      h("label", {}, "Retention", retention), h("button", { type: "submit" }, "Create topic")));
  view.append(form, h("div", { class: "panel" }, list));
  api("GET", "/api/whoami").then((me) => { form.hidden = !me.may_create_topics; });
  const update = (topics) => list.replaceChildren(topicTable(topics));
  api("GET", "/api/topics").then(update);
  return (d) => update(d.topic_list);
}

function topicPage(view, topic) {
  const cards = h("div", { class: "cards" });
  const partitions = h("div");
  const configs = h("div");
  const count = h("input", { id: "partition-count", type: "number", min: "1", style: "width:90px" });
  const retention = h("span");
  // Offered once the topic is known to exist.
  const actions = () => document.getElementById("head-actions").replaceChildren(
    h("a", { href: `#/messages?topic=${enc(topic)}` }, h("button", { class: "ghost" }, "Browse messages")),
    " ",
    h("button", { class: "danger", id: "purge-topic", onclick: async () => {
      const sure = await confirmDialog(`Purge topic ${topic}?`,
        "every record in every partition is deleted (DeleteRecords up to the end offset); the " +
        "topic, its configs and the offsets stay. This cannot be undone.", "Purge messages");
      if (sure && await attempt(() => api("DELETE", `/api/topics/${enc(topic)}/records`),
        `Purged topic ${topic}`)) refresh();
    } }, "Purge messages"),
    " ",
    h("button", { class: "danger", id: "delete-topic", onclick: async () => {
      const sure = await confirmDialog(`Delete topic ${topic}?`,
        "Its partitions, every record in them and the committed offsets of all groups on it " +
        "are removed. This cannot be undone.", "Delete topic");
      if (sure && await attempt(() => api("DELETE", `/api/topics/${enc(topic)}`),
        `Deleted topic ${topic}`)) location.hash = "#/topics";
    } }, "Delete topic"));
  view.append(cards,
    h("div", { class: "panel" }, h("h2", {}, "Partitions"), partitions),
    h("div", { class: "grid2" },
      h("div", { class: "panel" }, h("h2", {}, "Change"),
        h("div", { class: "stack" },
          h("form", { class: "row", onsubmit: async (event) => {
            event.preventDefault();
            await attempt(() => api("POST", `/api/topics/${enc(topic)}/partitions`,
              { count: Number(count.value) }), `${topic} now has ${count.value} partitions`);
            refresh();
          } }, h("label", {}, "Partitions (total)", count),
          h("button", { type: "submit", id: "add-partitions" }, "Add partitions")),
          h("form", { class: "row", onsubmit: async (event) => {
            event.preventDefault();
            const ms = event.target.querySelector("select").value;
            await attempt(() => api("PATCH", `/api/topics/${enc(topic)}/configs`,
              { "retention.ms": ms }), `Retention of ${topic} set to ${fmtRetention(Number(ms))}`);
            refresh();
          } }, h("label", {}, "Retention", retention),
          h("button", { type: "submit", id: "set-retention" }, "Set retention")))),
      h("div", { class: "panel" }, h("h2", {}, "Configs"), configs)));
  let shownRetention;
  let lastAllowed;
  const offer = () => {  // only what the ACLs let the user do to this topic (all: no ACL view)
    const may = (op) => !lastAllowed || lastAllowed.has(op);
    const hide = (id, hidden, form = false) => {
      const el = document.getElementById(id);
      if (el) (form ? el.form : el).hidden = hidden;
    };
    hide("delete-topic", !may("DELETE"));
    hide("purge-topic", !may("DELETE"));  // DeleteRecords needs DELETE on the topic
    hide("add-partitions", !may("ALTER"), true);
    hide("set-retention", !may("ALTER_CONFIGS"), true);
  };
  const update = (t) => {
    lastAllowed = t.allowed ? new Set(t.allowed) : null;
    offer();
    cards.replaceChildren(card("Partitions", t.partitions.length), card("Messages", fmtNum(t.messages)),
      card("Size on disk", fmtBytes(t.size)), card("Retention", fmtRetention(t.retention_ms)));
    partitions.replaceChildren(table(["Partition", num("Start offset"), num("End offset"),
      num("Stable offset"), num("Messages"), num("Size"), num("Segments"), ""],
    t.partitions.map((p) => h("tr", {}, h("td", {}, p.partition),
      h("td", { class: "num mono" }, fmtNum(p.start_offset)),
      h("td", { class: "num mono" }, fmtNum(p.end_offset)),
      h("td", { class: "num mono", title: "last stable offset: read_committed consumers stop here" },
        fmtNum(p.stable_offset)),
      h("td", { class: "num" }, fmtNum(p.messages)), h("td", { class: "num" }, fmtBytes(p.size)),
      h("td", { class: "num" }, p.segments),
      h("td", {}, h("a", { href: `#/messages?topic=${enc(topic)}&partition=${p.partition}` },
        "Browse")))), "No partitions."));
    configs.replaceChildren(table(["Name", "Value"], t.configs.map((c) =>
      h("tr", {}, h("td", { class: "mono" }, c.name),
        h("td", { class: "mono" }, c.value, c.default ? h("span", { class: "muted" }, "  (default)")
          : null))), ""));
    if (document.activeElement !== count) count.min = count.value = String(t.partitions.length + 1);
    if (shownRetention !== t.retention_ms) {
      shownRetention = t.retention_ms;
      retention.replaceChildren(retentionSelect("retention", t.retention_ms));
    }
  };
  const refresh = () => api("GET", `/api/topics/${enc(topic)}`).then(update, failed(view));
  refresh().then(() => { if (shownRetention !== undefined) { actions(); offer(); } });
  return (d) => {
    const t = d.topic_list.find((x) => x.name === topic);
    if (t) update(t);
  };
}

// --- message browser ------------------------------------------------------------------------------

const MAX_ROWS = 500;  // rows a live tail keeps on the page (the oldest go)
const TAIL_MS = 1000;

function bytesOf(b64) {
  return b64 === null ? new Uint8Array() : Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function hexDump(b64) {
  const bytes = bytesOf(b64), lines = [];
  for (let at = 0; at < bytes.length; at += 16) {
    const row = [...bytes.slice(at, at + 16)];
    lines.push(`${at.toString(16).padStart(8, "0")}  ` +
      row.map((b) => b.toString(16).padStart(2, "0")).join(" ").padEnd(48) + "  " +
      row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join(""));
  }
  return lines.join("\n");
}

function isJson(text) {
  if (text === null) return false;
  const t = text.trim();
  if (!(t.startsWith("{") || t.startsWith("["))) return false;
  try { JSON.parse(t); return true; } catch (_) { return false; }
}

// A key or value in one of the views: json, text, hex, base64.
function dataView(text, b64, mode) {
  if (text === null) return h("span", { class: "null" }, "null");
  if (mode === "json" && isJson(text)) return jsonNode(text.trim());
  if (mode === "hex") return h("pre", { class: "value" }, hexDump(b64));
  if (mode === "base64") return h("pre", { class: "value" }, b64);
  return h("pre", { class: "value" }, text);
}

// One record: a compact row, and its detail row that a click opens. Every record is shown here
// (the browse page and the live tail), so a decoding step belongs in this one function.
function recordRows(r) {
  const detail = h("tr", { class: "detail", hidden: true });
  let mode = isJson(r.value) ? "json" : "text";
  const body = h("div");
  const show = () => {
    body.replaceChildren(
      h("div", { class: "views", role: "tablist" }, ["json", "text", "hex", "base64"].map((m) =>
        h("button", { type: "button", class: m === mode ? "small" : "ghost small", "data-view": m,
          onclick: () => { mode = m; show(); } }, m.toUpperCase()))),
      r.schema ? h("div", { class: "muted" }, "Decoded") : "",
      r.schema ? recordValue(r) : "",
      h("div", { class: "muted" }, `Value (${fmtBytes(r.size)}${r.truncated
        ? ", cut: export the topic to get it whole" : ""})`),
      dataView(r.value, r.value_b64, mode),
      h("div", { class: "muted" }, "Key"), dataView(r.key, r.key_b64, mode === "json" ? "text" : mode),
      h("div", { class: "muted" }, "Headers"),
      h("div", {}, r.headers.length ? r.headers.map(([k, v]) => h("span", { class: "chip" },
        `${k}: ${v ?? "null"}`)) : h("span", { class: "muted" }, "none")));
  };
  const row = h("tr", { "data-offset": r.offset, "data-partition": r.partition, class: "record",
    onclick: () => {
      detail.hidden = !detail.hidden;
      if (!detail.hidden && !body.childElementCount) show();
    } },
  h("td", { class: "num" }, r.partition), h("td", { class: "num mono" }, r.offset),
  h("td", { style: "white-space:nowrap" }, timeNode(r.timestamp)),
  h("td", { class: "key" }, r.key === null ? h("span", { class: "null" }, "null") : r.key),
  h("td", { class: "preview" }, r.schema && !r.schema.error ? [schemaChip(r.schema),
    " ", r.schema.value.slice(0, 300)] : r.value === null ? h("span", { class: "null" }, "null")
    : r.value.slice(0, 300)),
  h("td", {}, r.headers.map(([k, v]) => h("span", { class: "chip" }, `${k}: ${v ?? "null"}`))),
  h("td", { class: "num" }, fmtBytes(r.size)));
  detail.append(h("td", { colSpan: 7 }, body));
  return [row, detail];
}

const BROWSE_FIELDS = ["topic", "partition", "start", "value", "limit", "newest", "q", "key",
  "value_has", "header", "cursor"];

function messagesPage(view, params) {
  const state = Object.fromEntries(BROWSE_FIELDS.map((f) => [f, params.get(f) || ""]));
  state.start = state.start || "beginning";
  state.limit = state.limit || "50";
  const select = (id, options, current) => h("select", { id }, options.map(([v, label]) =>
    h("option", { value: v, selected: v === current }, label)));
  const topicSelect = h("select", { id: "msg-topic" });
  const partitionSelect = h("select", { id: "msg-partition" });
  const orderSelect = select("msg-order", [["", "Oldest first"], ["1", "Newest first"]],
    state.newest);
  const startSelect = select("msg-start", [["beginning", "Beginning"], ["end", "Latest"],
    ["offset", "Offset"], ["timestamp", "Time (UTC)"]], state.start);
  const offsetInput = h("input", { id: "msg-offset", type: "number", min: "0", placeholder: "offset",
    style: "width:120px" });
  const timeInput = h("input", { id: "msg-time", type: "datetime-local", step: "0.001" });
  const limitSelect = select("msg-limit", [20, 50, 100, 200, 500].map((n) => [String(n), n]),
    state.limit);
  const filter = (id, placeholder, value) => h("input", { id, type: "search", placeholder, value,
    style: "width:150px" });
  const search = filter("msg-search", "key or value", state.q);
  const keyFilter = filter("msg-key", "key contains", state.key);
  const valueFilter = filter("msg-value", "value contains", state.value_has);
  const headerFilter = filter("msg-header", "name: value", state.header);
  const results = h("div");
  const status = h("div", { class: "muted", id: "msg-status" });
  const pager = h("div", { class: "pager" });
  const showStartInputs = () => {
    offsetInput.hidden = startSelect.value !== "offset";
    timeInput.hidden = startSelect.value !== "timestamp";
  };
  if (state.start === "offset") offsetInput.value = state.value;
  if (state.start === "timestamp" && state.value) {
    timeInput.value = new Date(Number(state.value)).toISOString().slice(0, 23);
  }
  startSelect.addEventListener("change", showStartInputs);
  showStartInputs();

  let topics = [];
  const fillPartitions = () => {
    const t = topics.find((x) => x.name === topicSelect.value);
    const parts = t ? t.partitions : [];
    partitionSelect.replaceChildren(h("option", { value: "" }, "All, by time"),
      ...parts.map((p) => h("option", { value: String(p.partition),
        selected: String(p.partition) === state.partition },
      `${p.partition}  (${fmtNum(p.start_offset)}–${fmtNum(p.end_offset)})`)));
    producePartition.replaceChildren(h("option", { value: "" }, "by key / any"),
      ...parts.map((p) => h("option", { value: String(p.partition) }, p.partition)));
    // Offered only to a user the ACLs let write to it (no `allowed`: no ACL view, all offered).
    const panel = document.getElementById("produce-panel");
    if (panel) panel.hidden = Boolean(t && t.allowed && !t.allowed.includes("WRITE"));
  };
  topicSelect.addEventListener("change", () => { state.partition = ""; fillPartitions(); });

  // The query of the form as it stands (without a cursor: a new first page).
  const formQuery = (overrides = {}) => {
    const start = startSelect.value;
    const value = start === "offset" ? offsetInput.value
      : start === "timestamp" && timeInput.value ? Date.parse(timeInput.value + "Z") : "";
    const q = { topic: topicSelect.value, partition: partitionSelect.value, start,
      value: String(value), limit: limitSelect.value, newest: orderSelect.value, q: search.value,
      key: keyFilter.value, value_has: valueFilter.value, header: headerFilter.value,
      ...overrides };
    return new URLSearchParams(Object.entries(q).filter(([, v]) => v !== "" && v !== undefined));
  };
  const go = (overrides) => navigate(`#/messages?${formQuery(overrides)}`);
  const apiQuery = (q) => { q.delete("topic"); return q; };

  // Produce a record by hand.
  const producePartition = h("select", { id: "produce-partition" });
  const key = h("input", { id: "produce-key", placeholder: "order-1" });
  const value = h("textarea", { id: "produce-value", rows: 4, placeholder: '{"id": 1}' });
  const headers = h("textarea", { id: "produce-headers", rows: 2, placeholder: "source: console" });
  const produce = async (event) => {
    event.preventDefault();
    const parsed = headers.value.split("\n").filter((l) => l.trim()).map((line) => {
      const at = line.indexOf(":");
      return at < 0 ? [line.trim(), ""] : [line.slice(0, at).trim(), line.slice(at + 1).trim()];
    });
    let done;
    const ok = await attempt(async () => {
      done = await api("POST", `/api/topics/${enc(topicSelect.value)}/records`, {
        partition: producePartition.value === "" ? null : Number(producePartition.value),
        key: key.value === "" ? null : key.value, value: value.value, headers: parsed,
      });
    });
    if (ok) {
      toast(`Produced to ${done.topic}-${done.partition} at offset ${done.offset}`);
      value.value = "";
      go({ start: "offset", value: String(done.offset), partition: String(done.partition),
        newest: "" });
    }
  };

  // Live tail: from the end of every partition shown, a page a second, newest on top.
  let tailTimer = null;
  const tailButton = h("button", { type: "button", class: "ghost", id: "msg-tail" }, "Live tail");
  const stopTail = () => {
    clearTimeout(tailTimer);
    tailTimer = null;
    tailButton.textContent = "Live tail";
  };
  const tail = async (cursor, tbody, seen) => {
    if (!tbody.isConnected) return stopTail();  // left the page
    const q = apiQuery(formQuery({ cursor, newest: "", limit: "500" }));
    try {
      const page = await api("GET", `/api/topics/${enc(topicSelect.value)}/records?${q}`);
      for (const r of page.records) tbody.prepend(...recordRows(r));
      while (tbody.rows.length > 2 * MAX_ROWS) { tbody.lastChild.remove(); tbody.lastChild.remove(); }
      seen += page.records.length;
      status.textContent = `Live: ${fmtNum(seen)} new record(s) since ${fmtTime(Date.now())}` +
        (tbody.rows.length >= 2 * MAX_ROWS ? ` (the newest ${MAX_ROWS} shown)` : "");
      tailTimer = setTimeout(() => tail(page.cursor, tbody, seen), TAIL_MS);
    } catch (err) {
      stopTail();
      status.textContent = err.message;
    }
  };
  tailButton.addEventListener("click", () => {
    if (tailTimer) return stopTail();
    const tbody = results.querySelector("tbody");
    if (!tbody || !lastPage) return;
    tailButton.textContent = "Stop tail";
    pager.replaceChildren();
    tail(lastPage.partitions.map((p) => `${p.partition}:${p.end_offset}`).join(","), tbody, 0);
  });
  const exportLink = h("a", { id: "msg-export", class: "button ghost", download: "" }, "Export");

  view.append(
    h("form", { class: "panel", onsubmit: (event) => { event.preventDefault(); stopTail(); go(); } },
      h("div", { class: "row" },
        h("label", {}, "Topic", topicSelect), h("label", {}, "Partition", partitionSelect),
        h("label", {}, "Order", orderSelect),
        h("label", {}, "Start at", h("div", { class: "row" }, startSelect, offsetInput, timeInput)),
        h("label", {}, "Page size", limitSelect)),
      h("div", { class: "row", style: "margin-top:10px" },
        h("label", {}, "Search", search), h("label", {}, "Key", keyFilter),
        h("label", {}, "Value", valueFilter), h("label", {}, "Header", headerFilter),
        h("button", { type: "submit", id: "msg-load" }, "Show messages"), tailButton, exportLink)),
    h("details", { class: "panel", id: "produce-panel" },
      h("summary", {}, "Produce a record"),
      h("form", { onsubmit: produce },
        h("div", { class: "row" }, h("label", {}, "Partition", producePartition),
          h("label", { style: "flex:1" }, "Key", key)),
        h("div", { class: "row", style: "margin-top:10px" },
          h("label", { style: "flex:2" }, "Value", value),
          h("label", { style: "flex:1" }, "Headers (name: value per line)", headers)),
        h("div", { class: "row end", style: "margin-top:10px" },
          h("button", { type: "submit", id: "produce" }, "Produce")))),
    h("div", { class: "panel" }, status, results, pager));

  let lastPage = null;
  const filtered = state.q || state.key || state.value_has || state.header;
  const showRecords = (page) => {
    lastPage = page;
    results.replaceChildren(table([num("Partition"), num("Offset"), "Timestamp (UTC)", "Key",
      "Value", "Headers", num("Size")], page.records.flatMap(recordRows),
    filtered ? "No record matching the filters in what this page read." : "No records here."));
    results.querySelector("table").classList.add("records");
    status.textContent = page.stopped
      ? `Stopped after reading ${fmtBytes(page.scanned_bytes)} (the scan limit of a page): ` +
        "“Next page” goes on from there." : "";
    pager.replaceChildren(
      h("button", { type: "button", class: "ghost small", id: "page-first", disabled: !state.cursor,
        onclick: () => go() }, "⟲ First page"),
      h("span", { class: "muted" }, page.partitions.map((p) =>
        `${p.partition}: ${fmtNum(p.start_offset)}–${fmtNum(p.end_offset)}`).join(" · ")),
      h("button", { type: "button", class: "ghost small", id: "page-next", disabled: page.done,
        onclick: () => go({ cursor: page.cursor }) },
      state.newest ? "Older →" : "Newer →"));
  };

  api("GET", "/api/topics").then((list) => {
    topics = list;
    if (!state.topic && list.length) state.topic = list[0].name;
    topicSelect.replaceChildren(...list.map((t) =>
      h("option", { value: t.name, selected: t.name === state.topic }, t.name)));
    fillPartitions();
    if (!state.topic) {
      results.replaceChildren(h("div", { class: "empty" }, "Create a topic first."));
      return;
    }
    const q = new URLSearchParams(BROWSE_FIELDS.filter((f) => f !== "topic" && state[f])
      .map((f) => [f, state[f]]));
    const exportQuery = new URLSearchParams(q);
    exportQuery.delete("cursor");
    exportQuery.delete("limit");
    exportLink.href = `/api/topics/${enc(state.topic)}/export?${exportQuery}`;
    api("GET", `/api/topics/${enc(state.topic)}/records?${q}`)
      .then(showRecords, (err) => results.replaceChildren(h("div", { class: "empty" }, err.message)));
  });
  return null;
}

function groupTable(groups) {
  return table(["Group", "State", num("Members"), "Topics", num("Lag")],
    groups.map((g) => h("tr", { "data-group": g.group },
      h("td", {}, h("a", { href: `#/groups/${enc(g.group)}` }, g.group)),
      h("td", {}, badge(g.state)), h("td", { class: "num" }, g.members),
      h("td", {}, g.topics.map((t) => h("span", { class: "chip" }, t))),
      h("td", { class: "num" }, fmtNum(g.lag)))),
    "No consumer groups yet: they appear when a consumer joins or commits.");
}

function groupsPage(view) {
  const list = h("div");
  view.append(h("div", { class: "panel" }, list));
  api("GET", "/api/groups").then((groups) => list.replaceChildren(groupTable(groups)));
  return (d) => list.replaceChildren(groupTable(d.group_list));
}

function transactionTable(txns) {
  return table(["Transactional id", num("Producer id"), num("Epoch"), "State", num("Running"),
    num("Timeout"), "Partitions"],
  txns.map((t) => h("tr", { "data-transaction": t.transactional_id },
    h("td", { class: "mono" }, t.transactional_id), h("td", { class: "num mono" }, t.producer_id),
    h("td", { class: "num" }, t.producer_epoch), h("td", {}, badge(t.state)),
    h("td", { class: "num" }, fmtDuration(t.running_ms / 1000)),
    h("td", { class: "num" }, fmtDuration(t.timeout_ms / 1000)),
    h("td", {}, t.partitions.map((p) => h("span", { class: "chip" }, p))))),
  "No open transactions.");
}

function transactionsPage(view) {
  const list = h("div");
  view.append(h("div", { class: "panel" }, h("p", { class: "muted" },
    "Open transactions hold back the stable offset of their partitions: read_committed " +
    "consumers read up to it."), list));
  let supported = true;
  api("GET", "/api/transactions").then((txns) => list.replaceChildren(transactionTable(txns)),
    (err) => {
      supported = false;  // a remote cluster: the page says why
      list.replaceChildren(h("div", { class: "empty", id: "unsupported" }, err.message));
    });
  return (d) => { if (supported) list.replaceChildren(transactionTable(d.transaction_list)); };
}

function lagCell(lag, end) {
  if (lag === null) return h("td", { class: "num muted" }, "—");
  const share = end > 0 ? Math.min(100, (100 * lag) / end) : 0;
  return h("td", { class: "num" }, h("div", { class: "lag" },
    h("div", { class: "lagbar" }, h("span", { style: `width:${share}%` })),
    h("span", { class: "lag-value" }, fmtNum(lag))));
}

function groupPage(view, group) {
  const cards = h("div", { class: "cards" });
  const members = h("div");
  const offsets = h("div");
  const topicSelect = h("select", { id: "reset-topic" });
  const toSelect = h("select", { id: "reset-to" },
    [["earliest", "Earliest"], ["latest", "Latest"], ["offset", "Offset"], ["timestamp", "Time"]]
      .map(([v, label]) => h("option", { value: v }, label)));
  const offsetInput = h("input", { id: "reset-offset", type: "number", min: "0", hidden: true,
    style: "width:120px" });
  const timeInput = h("input", { id: "reset-time", type: "datetime-local", step: "1", hidden: true });
  toSelect.addEventListener("change", () => {
    offsetInput.hidden = toSelect.value !== "offset";
    timeInput.hidden = toSelect.value !== "timestamp";
  });
  const resetHint = h("span", { class: "muted", id: "reset-hint" });
  const resetButton = h("button", { type: "submit", class: "danger", id: "reset-offsets" },
    "Reset offsets…");
  const deleteButton = h("button", { class: "danger", id: "delete-group", onclick: async () => {
    const sure = await confirmDialog(`Delete group ${group}?`,
      "The group and all its committed offsets are removed (DeleteGroups). This cannot be undone.",
      "Delete group");
    if (sure && await attempt(() => api("DELETE", `/api/groups/${enc(group)}`),
      `Deleted group ${group}`)) location.hash = "#/groups";
  } }, "Delete group");
  const reset = async (event) => {
    event.preventDefault();
    const to = toSelect.value, topic = topicSelect.value;
    const value = to === "offset" ? Number(offsetInput.value)
      : to === "timestamp" ? new Date(timeInput.value).getTime() : null;
    const where = to === "offset" ? `offset ${value}` : to === "timestamp" ? fmtTime(value) : to;
    const sure = await confirmDialog(`Reset offsets of ${group}?`,
      `Every partition of ${topic} gets committed offset: ${where}. The group's consumers will ` +
      "resume from there (records may be skipped or read again). The group must have no " +
      "active members.", "Reset offsets");
    if (sure && await attempt(() => api("POST", `/api/groups/${enc(group)}/reset-offsets`,
      { topic, to, value }), `Offsets of ${group} on ${topic} reset to ${where}`)) refresh();
  };
  view.append(cards,
    h("div", { class: "panel" }, h("h2", {}, "Committed offsets and lag"), offsets),
    h("div", { class: "panel" }, h("h2", {}, "Members"), members),
    h("form", { class: "panel", onsubmit: reset }, h("h2", {}, "Reset offsets"),
      h("div", { class: "row" }, h("label", {}, "Topic", topicSelect),
        h("label", {}, "To", h("div", { class: "row" }, toSelect, offsetInput, timeInput)),
        resetButton, resetHint)));
  let topicsShown = "";
  const update = (g) => {
    // Kafka refuses both while the group has members (NON_EMPTY_GROUP): say so up front.
    const busy = g.members.length > 0;
    resetHint.textContent = busy
      ? "The group has active members: stop its consumers before resetting or deleting it." : "";
    resetButton.disabled = deleteButton.disabled = busy;
    const allowed = g.allowed ? new Set(g.allowed) : null;  // what the ACLs let the user do
    resetButton.form.hidden = Boolean(allowed && !allowed.has("READ"));
    deleteButton.hidden = Boolean(allowed && !allowed.has("DELETE"));
    const title = busy ? "the group has active members" : null;
    for (const b of [resetButton, deleteButton]) b.title = title || "";
    if (!deleteButton.isConnected) document.getElementById("head-actions").append(deleteButton);
    cards.replaceChildren(card("State", badge(g.state), g.protocol || null, "state"),
      card("Members", g.members.length, null, "members"), card("Total lag", fmtNum(g.lag), null, "lag"));
    offsets.replaceChildren(table(["Topic", num("Partition"), num("Committed"), num("End offset"),
      num("Lag"), "Consumer"],
    g.offsets.map((o) => h("tr", { "data-tp": `${o.topic}-${o.partition}` },
      h("td", {}, h("a", { href: `#/topics/${enc(o.topic)}` }, o.topic)),
      h("td", { class: "num" }, o.partition),
      h("td", { class: "num mono" }, o.committed === null ? "—" : fmtNum(o.committed)),
      h("td", { class: "num mono" }, fmtNum(o.end_offset)), lagCell(o.lag, o.end_offset),
      h("td", { class: "mono" }, o.owner || h("span", { class: "muted" }, "unassigned")))),
    "No committed offsets."));
    members.replaceChildren(table(["Member", "Client", "Host", "Assigned partitions"],
      g.members.map((m) => h("tr", {}, h("td", { class: "mono" }, m.member_id),
        h("td", {}, m.client_id), h("td", { class: "mono" }, m.client_host),
        h("td", {}, m.assignment.map((a) => h("span", { class: "chip" },
          `${a.topic}: ${a.partitions.join(", ")}`))))),
      "No active members."));
    const names = [...new Set(g.offsets.map((o) => o.topic))];
    if (names.join() !== topicsShown) {
      topicsShown = names.join();
      topicSelect.replaceChildren(...names.map((t) => h("option", { value: t }, t)));
    }
  };
  const refresh = () => api("GET", `/api/groups/${enc(group)}`).then(update, failed(view));
  refresh();
  return refresh;
}

// --- schemas ------------------------------------------------------------------------------------

function schemasPage(view) {
  const list = h("div");
  view.append(h("div", { class: "panel" }, list));
  api("GET", "/api/schemas").then((d) => {
    if (!d.enabled) {
      list.replaceChildren(h("div", { class: "empty" },
        "This broker runs no schema registry (started with --no-schema-registry)."));
      return;
    }
    list.replaceChildren(h("p", { class: "muted" }, `Global compatibility: ${d.level}`),
      table(["Subject", "Type", num("Versions"), num("Latest"), num("Id"), "Compatibility"],
        d.subjects.map((s) => h("tr", { "data-subject": s.subject },
          h("td", {}, h("a", { href: `#/schemas/${enc(s.subject)}` }, s.subject)),
          h("td", {}, s.type), h("td", { class: "num" }, s.versions),
          h("td", { class: "num" }, s.latest), h("td", { class: "num" }, s.id),
          h("td", {}, s.level))),
        "No subjects yet: register a schema (e.g. minikafka schemas register SUBJECT FILE)."));
  }, (err) => list.replaceChildren(h("div", { class: "empty" }, err.message)));
}

// A schema's text for reading and diffing: JSON pretty-printed, Protobuf as registered.
function schemaLines(version) {
  if (version.type === "PROTOBUF") return version.schema.split("\n");
  return JSON.stringify(JSON.parse(version.schema), null, 2).split("\n");
}

// Line diff (longest common subsequence): [[" " | "-" | "+", line], ...].
function diffLines(a, b) {
  const n = a.length, m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push([" ", a[i]]); i++; j++; }
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) out.push(["+", b[j++]]);
    else out.push(["-", a[i++]]);
  }
  return out;
}

function subjectPage(view, subject) {
  const cards = h("div", { class: "cards" });
  const versions = h("div");
  const fromSelect = h("select", { id: "diff-from" });
  const toSelect = h("select", { id: "diff-to" });
  const diff = h("pre", { class: "value diff", id: "schema-diff" });
  const candidate = h("textarea", { id: "check-schema", rows: 8, placeholder: "a schema" });
  const result = h("div", { id: "check-result" });
  let loaded = [];
  let type = "AVRO";
  const showDiff = () => {
    const from = loaded.find((v) => v.version === Number(fromSelect.value));
    const to = loaded.find((v) => v.version === Number(toSelect.value));
    if (!from || !to) return;
    diff.replaceChildren(...diffLines(schemaLines(from), schemaLines(to)).map(([mark, line]) =>
      h("div", { class: mark === "+" ? "added" : mark === "-" ? "removed" : "" },
        `${mark} ${line}`)));
  };
  fromSelect.addEventListener("change", showDiff);
  toSelect.addEventListener("change", showDiff);
  const check = (event) => {
    event.preventDefault();
    attempt(async () => {
      const answer = await api("POST", `/api/schemas/${enc(subject)}/check`,
        { schema: candidate.value, schemaType: type });
      result.replaceChildren(h("p", { class: answer.is_compatible ? "ok" : "bad" },
        answer.is_compatible ? "Compatible: it would register as the next version."
          : "Incompatible:"), ...answer.messages.map((m) => h("div", { class: "mono" }, m)));
    });
  };
  view.append(cards,
    h("div", { class: "panel" }, h("h2", {}, "Versions"), versions),
    h("div", { class: "panel" }, h("h2", {}, "Differences"),
      h("div", { class: "row" }, h("label", {}, "From ", fromSelect),
        h("label", {}, "to ", toSelect)), diff),
    h("form", { class: "panel", onsubmit: check }, h("h2", {}, "Check compatibility"),
      candidate, h("div", { class: "row end" },
        h("button", { type: "submit", id: "check" }, "Check")), result));
  api("GET", `/api/schemas/${enc(subject)}`).then((d) => {
    loaded = d.versions;
    const latest = loaded[loaded.length - 1];
    type = latest.type;
    candidate.value = latest.type === "PROTOBUF" ? latest.schema
      : JSON.stringify(JSON.parse(latest.schema), null, 2);
    cards.replaceChildren(card("Type", latest.type, null, "type"),
      card("Versions", fmtNum(loaded.length), `latest: ${latest.version}`, "versions"),
      card("Latest id", latest.id, null, "id"),
      card("Compatibility", d.level, null, "level"));
    versions.replaceChildren(table([num("Version"), num("Id"), "References", "Schema"],
      loaded.map((v) => h("tr", { "data-version": v.version },
        h("td", { class: "num" }, v.version), h("td", { class: "num" }, v.id),
        h("td", {}, v.references.map((r) => h("span", { class: "chip" },
          `${r.name} → ${r.subject} v${r.version}`))),
        h("td", {}, h("details", {}, h("summary", {}, "show"),
          h("pre", { class: "value" }, schemaLines(v).join("\n")))))), "No versions."));
    const options = (selected) => loaded.map((v) => h("option",
      { value: v.version, selected: v.version === selected }, `version ${v.version}`));
    fromSelect.replaceChildren(...options(loaded[Math.max(0, loaded.length - 2)].version));
    toSelect.replaceChildren(...options(latest.version));
    showDiff();
  }, (err) => view.replaceChildren(h("div", { class: "panel empty" }, err.message)));
}

// --- routing ------------------------------------------------------------------------------------

const ROUTES = [
  [/^#?\/?$/, "overview", "Overview", (view) => overviewPage(view)],
  [/^#\/topics$/, "topics", "Topics", (view) => topicsPage(view)],
  [/^#\/topics\/(.+)$/, "topics", (m) => `Topic ${m[1]}`, (view, m) => topicPage(view, m[1])],
  [/^#\/messages$/, "messages", "Messages", (view, _m, params) => messagesPage(view, params)],
  [/^#\/groups$/, "groups", "Consumer groups", (view) => groupsPage(view)],
  [/^#\/groups\/(.+)$/, "groups", (m) => `Group ${m[1]}`, (view, m) => groupPage(view, m[1])],
  [/^#\/schemas$/, "schemas", "Schemas", (view) => schemasPage(view)],
  [/^#\/schemas\/(.+)$/, "schemas", (m) => `Subject ${m[1]}`, (view, m) => subjectPage(view, m[1])],
  [/^#\/transactions$/, "transactions", "Transactions", (view) => transactionsPage(view)],
];
let pageListener = null;

// Go to `hash`, rendering again even when it is the current one (a repeated search).
function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function render() {
  const [path, query] = location.hash.split("?");
  const params = new URLSearchParams(query || "");
  const view = document.getElementById("view");
  view.replaceChildren();
  document.getElementById("head-actions").replaceChildren();
  live.listeners.delete(pageListener);
  for (const [pattern, nav, title, page] of ROUTES) {
    const raw = path.match(pattern);
    if (!raw) continue;
    const m = raw.map((part, i) => (i ? decodeURIComponent(part) : part));
    document.getElementById("title").textContent = typeof title === "function" ? title(m) : title;
    document.title = `${document.getElementById("title").textContent} · minikafka`;
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === nav);
    pageListener = page(view, m, params);
    if (pageListener) {
      live.listeners.add(pageListener);
      if (live.data && nav === "overview") pageListener(live.data);
    }
    return;
  }
  notFound(view, `No page at ${location.hash}.`);
}

// The Not-found page, also for a topic or group that does not exist.
function notFound(view, message) {
  document.getElementById("title").textContent = "Not found";
  document.title = "Not found · minikafka";
  document.getElementById("head-actions").replaceChildren();
  live.listeners.delete(pageListener);
  view.replaceChildren(h("div", { class: "panel empty" }, message));
}

window.addEventListener("hashchange", render);
render();
connectLive();
