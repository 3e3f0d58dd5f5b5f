// gatehouse dashboard, the /metrics side: parses the Prometheus (or
// OpenMetrics) text format, keeps the last minute of scrapes, and answers
// how much a counter grew over that minute. It reads two families:
// gatehouse_requests_total by (server, virtual_service, route) with its
// 5xx, and gatehouse_tls_handshakes_total by (result, server). It touches
// no page; app.js draws what it answers.
"use strict";

window.gatehouseMetrics = (function () {
  const WINDOW_MS = 60000;

  // Successive scrapes of the last minute: {t, req, hs}.
  const history = [];
  let seen = { req: false, hs: false };

  function label(v) {
    return v === null || v === undefined ? "" : String(v);
  }

  // One sample line: {name, labels, value}, or null when it is not one.
  function parseSample(line) {
    let i = 0;
    while (i < line.length && line[i] !== "{" && line[i] !== " " && line[i] !== "\t") i++;
    const name = line.slice(0, i);
    const labels = {};
    if (line[i] === "{") {
      i++;
      for (;;) {
        while (line[i] === " " || line[i] === ",") i++;
        if (i >= line.length) return null;
        if (line[i] === "}") {
          i++;
          break;
        }
        const eq = line.indexOf("=", i);
        if (eq < 0 || line[eq + 1] !== '"') return null;
        const key = line.slice(i, eq).trim();
        let value = "";
        i = eq + 2;
        while (i < line.length && line[i] !== '"') {
          if (line[i] === "\\" && i + 1 < line.length) {
            const n = line[i + 1];
            value += n === "n" ? "\n" : n;
            i += 2;
          } else {
            value += line[i++];
          }
        }
        if (line[i] !== '"') return null;
        i++;
        labels[key] = value;
      }
    }
    const value = Number(line.slice(i).trim().split(/\s+/)[0]);
    return name && Number.isFinite(value) ? { name: name, labels: labels, value: value } : null;
  }

  function scrape(text) {
    const req = new Map();
    const hs = new Map();
    const found = { req: false, hs: false };
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (!line || line[0] === "#") continue;
      const s = parseSample(line);
      if (!s) continue;
      const l = s.labels;
      if (s.name === "gatehouse_requests_total") {
        found.req = true;
        const key = JSON.stringify([label(l.server), label(l.virtual_service), label(l.route)]);
        const row = req.get(key) || { total: 0, err: 0 };
        row.total += s.value;
        if (label(l.code).startsWith("5")) row.err += s.value;
        req.set(key, row);
      } else if (s.name === "gatehouse_tls_handshakes_total") {
        found.hs = true;
        const key = JSON.stringify([label(l.result), label(l.server)]);
        hs.set(key, (hs.get(key) || 0) + s.value);
      }
    }
    return { req: req, hs: hs, found: found };
  }

  // Keeps one scrape of /metrics (its text), dropping those over a minute old.
  function remember(text) {
    const sample = scrape(text);
    const now = Date.now();
    history.push({ t: now, req: sample.req, hs: sample.hs });
    while (history.length > 1 && history[0].t < now - WINDOW_MS) history.shift();
    seen = sample.found;
  }

  // A counter's growth over the window (a restart resets it: then the
  // current value is the growth).
  function growth(now, then) {
    return then === undefined || now < then ? now : now - then;
  }

  // Requests and 5xx of one (server, virtual service, route) key over the
  // window; null until two scrapes are kept.
  function requestsOverWindow(key) {
    if (history.length < 2) return null;
    const first = history[0].req.get(key) || { total: 0, err: 0 };
    const last = history[history.length - 1].req.get(key) || { total: 0, err: 0 };
    return { total: growth(last.total, first.total), err: growth(last.err, first.err) };
  }

  // Every (result, server) of the last scrape: its total since the
  // gateway started and its growth over the window (null until two scrapes).
  function handshakes() {
    if (history.length === 0) return [];
    const last = history[history.length - 1].hs;
    const first = history.length > 1 ? history[0].hs : null;
    return Array.from(last, ([key, total]) => {
      const [result, server] = JSON.parse(key);
      return { result: result, server: server, total: total, recent: first ? growth(total, first.get(key)) : null };
    });
  }

  return {
    remember: remember,
    requestsOverWindow: requestsOverWindow,
    handshakes: handshakes,
    seen: () => seen,
    parseSample: parseSample,
  };
})();
