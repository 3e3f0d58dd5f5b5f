// gatehouse dashboard: reads /config_dump and /metrics every second and
// draws them. Plain JavaScript, no framework, nothing loaded from
// elsewhere. Text from the gateway only ever enters the page through text
// nodes (never as markup): an object's name could hold HTML.
"use strict";

(function () {
  const POLL_MS = 1000;
  const TOKEN_KEY = "gatehouse-admin-token";
  const DAY_MS = 86400000;

  let needToken = false;
  // The /metrics side: parsing, the last minute of scrapes (scrape.js).
  const metrics = window.gatehouseMetrics;

  class Unauthorized extends Error {}

  // ------------------------------------------------------------ DOM helpers

  // el("td", {class: "num", "data-label": "Days"}, "12", node, [more])
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) node.setAttribute(k, String(v));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(node, c);
      else if (c instanceof Node) node.appendChild(c);
      else node.appendChild(document.createTextNode(String(c)));
    }
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function show(id, ...children) {
    byId(id).replaceChildren(...children.flat().filter((c) => c));
  }

  function noData(text) {
    return el("p", { class: "nodata" }, text || "no data");
  }

  function str(v, fallback) {
    if (v === null || v === undefined || v === "") return fallback === undefined ? "-" : fallback;
    return String(v);
  }

  function list(v) {
    return Array.isArray(v) ? v : [];
  }

  // A table: headers [[label, class]], rows of cells (each a node, text or
  // {v, class}); cells are labelled for the phone layout.
  function table(caption, headers, rows) {
    const head = el("tr", {}, headers.map(([h, cls]) => el("th", { scope: "col", class: cls }, h)));
    const body = rows.map((cells) =>
      el(
        "tr",
        {},
        cells.map((c, i) => {
          const [label, cls] = headers[i];
          const cell = c !== null && typeof c === "object" && !(c instanceof Node) && !Array.isArray(c) ? c : { v: c };
          return el("td", { "data-label": label, class: cell.class || cls }, cell.v);
        })
      )
    );
    return el("table", {}, caption ? el("caption", {}, caption) : null, el("thead", {}, head), el("tbody", {}, body));
  }

  const STATE_CLASS = {
    ACTIVE: "ok",
    READY: "ok",
    WARMING: "info",
    EXPIRING: "warn",
    REJECTED: "bad",
    EXPIRED: "bad",
    UNAVAILABLE: "bad",
    pushed: "ok",
    removed: "warn",
    rejected: "bad",
    applied: "ok",
    skipped: "bad",
  };

  function badge(state) {
    const s = str(state, "UNKNOWN");
    return el("span", { class: "badge " + (STATE_CLASS[s] || "info"), "data-state": s }, s);
  }

  // ------------------------------------------------------------ dates

  // not_after as unix seconds (a number) or an RFC 3339 string.
  function toDate(v) {
    if (typeof v === "number") return new Date(v * 1000);
    if (typeof v === "string" && v) {
      const d = new Date(v);
      if (!isNaN(d.getTime())) return d;
    }
    return null;
  }

  function isoDate(d) {
    return d ? d.toISOString().replace(".000Z", "Z") : "-";
  }

  // Days left until `d`, in colour: red under 7, amber under 30, else green.
  function daysLeft(d) {
    if (!d) return el("span", {}, "-");
    const days = Math.floor((d.getTime() - Date.now()) / DAY_MS);
    const cls = days < 7 ? "bad" : days < 30 ? "warn" : "ok";
    const text = d.getTime() <= Date.now() ? "expired " + Math.max(0, -days - 1) + " days ago" : days + " days";
    return el("span", { class: "days " + cls, "data-days": days }, text);
  }

  // ------------------------------------------------------------ fetching

  function token() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY);
    } catch (e) {
      return null;
    }
  }

  async function get(path) {
    const headers = {};
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const r = await fetch(path, { headers: headers, cache: "no-store", credentials: "omit" });
    if (r.status === 401) throw new Unauthorized(path);
    if (!r.ok) throw new Error(path + " answered " + r.status);
    return r;
  }

  // ------------------------------------------------------------ listeners

  function caName(credential) {
    return credential.startsWith("file-cert:")
      ? "file-root:" + credential.slice("file-cert:".length)
      : credential + "-cacert";
  }

  function certFacts(row) {
    const certs = list(row.certs);
    const c = certs[0] || {};
    const notAfter = toDate(c.not_after);
    const more = certs.length > 1 ? " (+" + (certs.length - 1) + " more in the bundle)" : "";
    return el(
      "div",
      { class: "cred", "data-resource": str(row.resource, "") },
      el("h4", {}, str(row.kind, "credential") + " ", el("code", {}, str(row.resource)), " ", badge(row.state)),
      el(
        "dl",
        { class: "facts" },
        el("dt", {}, "Serial"),
        el("dd", { class: "mono serial" }, str(c.serial) + more),
        el("dt", {}, "Subject"),
        el("dd", {}, str(c.subject)),
        el("dt", {}, "Issuer"),
        el("dd", {}, str(c.issuer)),
        el("dt", {}, "Not after"),
        el("dd", {}, isoDate(notAfter)),
        el("dt", {}, "Days left"),
        el("dd", {}, daysLeft(notAfter)),
        row.reason ? [el("dt", {}, "Reason"), el("dd", {}, str(row.reason))] : null
      )
    );
  }

  function serverCard(server, secrets) {
    const credential = str(server.credential, "");
    const rows = credential ? [secrets.get(credential), secrets.get(caName(credential))].filter((r) => r) : [];
    return el(
      "article",
      { class: "server", "data-server": str(server.id, "") },
      el("h4", {}, el("code", {}, str(server.id, "(unnamed server)")), " ", badge(server.state)),
      el(
        "dl",
        { class: "facts" },
        el("dt", {}, "Hosts"),
        el("dd", { class: "hosts" }, list(server.hosts).join(", ") || "-"),
        el("dt", {}, "TLS mode"),
        el("dd", {}, str(server.tls_mode, "none")),
        el("dt", {}, "Credential"),
        el("dd", {}, el("code", {}, str(server.credential))),
        server.reason ? [el("dt", {}, "Reason"), el("dd", {}, str(server.reason))] : null
      ),
      rows.map(certFacts),
      credential && rows.length === 0 ? el("p", { class: "nodata" }, "no credential pushed under this name") : null
    );
  }

  function renderListeners(dump) {
    if (!Array.isArray(dump.listeners)) return show("listeners", noData());
    const listeners = dump.listeners;
    if (listeners.length === 0) return show("listeners", noData("no listeners"));
    const secrets = new Map(list(dump.secrets).map((s) => [s.resource, s]));
    show(
      "listeners",
      listeners.map((l) =>
        el(
          "div",
          { class: "listener" },
          el(
            "h3",
            {},
            "Port " + str(l.port) + " on " + str(l.address) + (l.tls ? " · TLS" : " · plaintext"),
            l.error ? [" ", el("span", { class: "badge bad" }, "ERROR"), " ", str(l.error)] : null
          ),
          list(l.servers).length
            ? el("div", { class: "servers" }, list(l.servers).map((s) => serverCard(s, secrets)))
            : noData("no servers")
        )
      )
    );
  }

  function renderExpiry(dump) {
    if (!Array.isArray(dump.secrets)) return show("expiry", noData());
    const rows = list(dump.secrets)
      .map((r) => ({ r: r, c: list(r.certs)[0] || {} }))
      .map((x) => ({ r: x.r, c: x.c, d: toDate(x.c.not_after) }))
      .sort((a, b) => (a.d ? a.d.getTime() : Infinity) - (b.d ? b.d.getTime() : Infinity));
    if (rows.length === 0) return show("expiry", noData("no credentials"));
    const headers = [["Resource"], ["Kind"], ["State"], ["Serial", "mono"], ["Issuer"], ["Not after"], ["Days left"], ["Reason"]];
    show(
      "expiry",
      table(
        null,
        headers,
        rows.map((x) => [
          el("code", {}, str(x.r.resource)),
          str(x.r.kind),
          badge(x.r.state),
          str(x.c.serial),
          str(x.c.issuer),
          isoDate(x.d),
          daysLeft(x.d),
          str(x.r.reason, ""),
        ])
      )
    );
  }

  // ------------------------------------------------------------ routes

  function errorCell(w) {
    if (!metrics.seen().req) return { v: "no data" };
    if (!w) return { v: "collecting…" };
    if (w.total === 0) return { v: "no requests" };
    const pct = (100 * w.err) / w.total;
    return { v: pct.toFixed(1) + "% (" + w.err + " of " + w.total + ")", class: "num " + (w.err > 0 ? "bad" : "ok") };
  }

  function routeRows(server) {
    return list(server.routes).map((r) => {
      const routeLabel = r.name !== null && r.name !== undefined ? String(r.name) : String(r.index);
      const key = JSON.stringify([str(server.id, ""), str(r.virtual_service, ""), routeLabel]);
      const w = metrics.requestsOverWindow(key);
      // Weights are relative: show each backend's share of the traffic.
      const weights = list(r.backends).map((b) => (typeof b.weight === "number" && b.weight > 0 ? b.weight : 0));
      const sum = weights.reduce((a, b) => a + b, 0);
      const backends = list(r.backends).map((b, i) =>
        el("li", {}, str(b.host) + ":" + str(b.port) + (sum > 0 ? " (" + Math.round((100 * weights[i]) / sum) + "%)" : ""))
      );
      return [
        list(r.hosts).join(", ") || "-",
        el("span", {}, el("code", {}, str(r.virtual_service)), " #" + str(r.index) + (r.name ? " " + r.name : "")),
        list(r.match).join("; ") || "any",
        str(r.action) + (r.status ? " " + r.status : ""),
        backends.length ? el("ul", { class: "plain" }, backends) : "-",
        { v: w && metrics.seen().req ? String(w.total) : "-", class: "num" },
        errorCell(w),
      ];
    });
  }

  function renderRoutes(dump) {
    if (!Array.isArray(dump.listeners)) return show("routes", noData());
    const servers = list(dump.listeners).flatMap((l) => list(l.servers));
    const headers = [["Hosts"], ["Route"], ["Match"], ["Action"], ["Backends"], ["Requests (1 min)", "num"], ["5xx (1 min)", "num"]];
    const tables = servers
      .filter((s) => list(s.routes).length)
      .map((s) => table("Server " + str(s.id), headers, routeRows(s)));
    show("routes", tables.length ? tables : noData("no routes"));
  }

  // ------------------------------------------------------------ refusals

  const REASONS = {
    unknown_sni: "no server for the SNI",
    no_client_cert: "no client certificate",
    unknown_ca: "client certificate from an unknown CA",
    expired: "client certificate expired or not yet valid",
    revoked: "client certificate revoked",
    bad_eku: "client certificate not for client auth",
    allow_list_mismatch: "not on the server's allow-list",
    no_credential: "server has no usable credential",
    protocol: "TLS protocol error",
    timeout: "handshake deadline passed",
  };

  function renderRefusals() {
    if (!metrics.seen().hs) return show("refusals", noData("no data (no handshake metrics yet)"));
    const rows = metrics
      .handshakes()
      .filter((r) => r.result !== "success" && r.total > 0);
    rows.sort((a, b) => (b.recent || 0) - (a.recent || 0) || b.total - a.total);
    if (rows.length === 0) return show("refusals", noData("no refusals since the gateway started"));
    const headers = [["Reason"], ["Server"], ["Last minute", "num"], ["Since start", "num"]];
    show(
      "refusals",
      table(
        null,
        headers,
        rows.map((r) => [
          el("span", {}, el("code", {}, r.result), REASONS[r.result] ? " " + REASONS[r.result] : ""),
          r.server ? el("code", {}, r.server) : "(none)",
          { v: r.recent === null ? "collecting…" : String(r.recent), class: "num" + (r.recent ? " bad" : "") },
          String(r.total),
        ])
      )
    );
  }

  // ------------------------------------------------------------ events, objects

  function renderEvents(dump) {
    if (!Array.isArray(dump.events)) return show("events", noData());
    if (dump.events.length === 0) return show("events", noData("no pushes yet"));
    const headers = [["Time"], ["Resource"], ["Event"], ["Reason"]];
    show(
      "events",
      table(
        null,
        headers,
        dump.events.map((e) => [str(e.time), el("code", {}, str(e.resource)), badge(e.event), str(e.reason, "")])
      )
    );
  }

  function renderObjects(dump) {
    const skipped = list(dump.objects).filter((o) => o.state === "skipped");
    const warnings = Array.isArray(dump.warnings) ? dump.warnings : list(dump.warnings && dump.warnings.warnings);
    const parts = [];
    if (!Array.isArray(dump.objects) && !dump.warnings) return show("objects", noData());
    if (skipped.length) {
      const headers = [["Kind"], ["Object"], ["Version"], ["Reason"]];
      parts.push(
        table(
          "Skipped: the last good version keeps serving",
          headers,
          skipped.map((o) => [str(o.kind), el("code", {}, str(o.namespace) + "/" + str(o.name)), str(o.resource_version), str(o.reason)])
        )
      );
    }
    if (warnings.length) {
      parts.push(el("h3", {}, "Warnings"));
      parts.push(el("ul", {}, warnings.map((w) => el("li", {}, typeof w === "string" ? w : str(w.warning || w.line || w.reason)))));
    }
    show("objects", parts.length ? parts : noData("none: every object applied, no warnings"));
  }

  // ------------------------------------------------------------ the loop

  function setStatus(text, down) {
    const s = byId("status");
    s.textContent = text;
    s.className = down ? "down" : "";
  }

  function askToken(refused) {
    needToken = true;
    const form = byId("login");
    form.hidden = false;
    byId("login-why").textContent = refused
      ? "The gateway refused the token. Enter the token of --admin-token-file."
      : "Enter the token of --admin-token-file. It is kept in this tab only (sessionStorage).";
    setStatus("the admin endpoint needs a token", true);
    byId("token").focus();
  }

  async function refresh() {
    const [dump, scraped] = await Promise.allSettled([
      get("/config_dump").then((r) => r.json()),
      get("/metrics").then((r) => r.text()),
    ]);
    if ([dump, scraped].some((r) => r.status === "rejected" && r.reason instanceof Unauthorized)) {
      return askToken(token() !== null);
    }
    const notes = [];
    if (scraped.status === "fulfilled") metrics.remember(scraped.value);
    else notes.push("metrics: " + scraped.reason.message);
    const d = dump.status === "fulfilled" && dump.value && typeof dump.value === "object" ? dump.value : {};
    if (dump.status === "rejected") notes.push("config_dump: " + dump.reason.message);
    const renders = [renderListeners, renderExpiry, renderRoutes, renderEvents, renderObjects];
    for (const render of renders) render(d);
    renderRefusals();
    const when = new Date().toLocaleTimeString();
    const head = dump.status === "fulfilled" ? "generation " + str(d.generation) + " · " + str(d.source) : "no config";
    setStatus(head + " · updated " + when + (notes.length ? " · " + notes.join("; ") : ""), notes.length > 0);
  }

  async function tick() {
    try {
      if (!needToken) await refresh();
    } catch (e) {
      setStatus("cannot reach the gateway: " + e.message, true);
    } finally {
      window.setTimeout(tick, POLL_MS);
    }
  }

  function start() {
    byId("login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = byId("token");
      try {
        window.sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      } catch (e) {
        setStatus("this browser keeps no sessionStorage: the token cannot be kept", true);
      }
      input.value = "";
      byId("login").hidden = true;
      needToken = false;
    });
    tick();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
