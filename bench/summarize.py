#!/usr/bin/env python3
"""Turns the measurements of bench/compare.sh (one JSON line per round,
proxy, metric and value) into bench/RESULTS.md: medians with min and max,
the machine, the versions, the command, and the issue's goals as ratios.

It only reads the results file and writes the report."""

import argparse
import datetime
import json
import os
import platform
import statistics
from collections import defaultdict

PROXIES = ["gatehouse", "nginx", "haproxy", "caddy"]
PEERS = ["nginx", "haproxy", "caddy"]


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return f"{os.cpu_count()} CPUs ({model}), {mem} memory, Linux {platform.release()}"


def main():
    ap = argparse.ArgumentParser()
    for a in ["results", "checks", "out", "command", "rounds", "duration", "hs-duration",
              "connections", "hs-concurrency", "idle", "hold", "rotations", "hosts",
              "updates", "fd-limit"]:
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--version", action="append", default=[])
    ap.add_argument("--h2-connections", default="10")
    ap.add_argument("--h2-streams", default="10")
    ap.add_argument("--mix-every", default="10")
    args = ap.parse_args()

    data = defaultdict(lambda: defaultdict(list))
    with open(args.results) as f:
        for line in f:
            r = json.loads(line)
            data[r["metric"]][r["proxy"]].append(float(r["value"]))

    # A baseline gatehouse build (compare.sh --baseline) is measured like a peer.
    proxies = list(PROXIES)
    if any("gatehouse-base" in by_proxy for by_proxy in data.values()):
        proxies.insert(1, "gatehouse-base")

    def med(metric, proxy):
        v = data.get(metric, {}).get(proxy)
        return statistics.median(v) if v else None

    def cell(metric, proxy, fmt="{:.0f}"):
        v = data.get(metric, {}).get(proxy)
        if not v:
            return "–"
        m = fmt.format(statistics.median(v))
        if len(v) == 1:
            return m
        return f"{m} ({fmt.format(min(v))}–{fmt.format(max(v))})"

    def table(title, cols, proxies=proxies):
        out = [f"### {title}", "", "| proxy | " + " | ".join(c[0] for c in cols) + " |",
               "|---|" + "---:|" * len(cols)]
        for p in proxies:
            out.append(f"| {p} | " + " | ".join(cell(c[1], p, c[2]) for c in cols) + " |")
        return "\n".join(out) + "\n"

    idle = args.idle.split()
    lines = []
    w = lines.append
    w("# gatehouse vs nginx, HAProxy and Caddy: the side-by-side benchmark\n")
    w(f"Run on {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
      f"{args.rounds} round(s); each cell is the median over rounds (min–max).\n")
    w("Reproduce (from the repository root, as root on Debian 12; installs the peers "
      f"from Debian if missing):\n\n```sh\n{args.command}\n```\n")
    w("## Machine and versions\n")
    w(f"- machine: {machine()}; open-files limit {args.fd_limit}")
    for v in args.version:
        name, _, text = v.partition("=")
        w(f"- {name}: {text.strip()}")
    la = data.get("loadavg_1m", {}).get("machine")
    if la:
        w(f"- 1-minute load average at the start of each round: "
          f"{', '.join(f'{v:.2f}' for v in la)} (from round 2 on it includes the "
          "benchmark's own load, about 3; more means other work on the machine, which "
          "skews every number)")
    w("")
    w("## Setup\n")
    w("- Each proxy is the walkthrough's ingress on one loopback port: a server certificate "
      "per SNI (`frontend.foocorp.com`, `inventory.foocorp.com`, ECDSA P-256, from "
      "`gatehouse pki init`), each host's own client CA required, `/` routed by Host to "
      "the same two `gatehouse-loadgen backend` processes (HTTP/1.1 keep-alive, 1 thread "
      "each), TLS 1.2–1.3.")
    w("- 2 workers each: nginx `worker_processes 2`, HAProxy `nbthread 2`, Caddy "
      "`GOMAXPROCS=2`, gatehouse its 2 tokio workers (one per core). Logs: gatehouse "
      "`RUST_LOG=warn` (no access log), nginx `access_log off`, HAProxy no `log`, Caddy "
      "no `log` directive. Upstream keep-alive on for all (nginx `keepalive 64`). "
      "Connection limits: nginx `worker_connections 16000`, gatehouse "
      "`--max-connections 16000 --max-connections-total 16000`, HAProxy `maxconn` "
      "(open-files limit - 17) / 2.")
    w("- The load generator (`gatehouse-loadgen`, rustls + aws-lc-rs, 2 threads) runs on "
      "the same 2 cores, offers only X25519 (OpenSSL 3.0 and gatehouse do the same key "
      "exchange), HTTP/1.1, resumption off. All four are measured in turn (A B C D, ...), "
      "each proxy started fresh for each measurement.")
    w(f"- (a) keep-alive: {args.connections} connections, one request in flight each, "
      f"{args.duration} s after a warm-up; CPU = utime+stime of the proxy's processes "
      "(nginx master and workers) from /proc/PID/stat, over the measured run, per request.")
    w(f"- (b) a new connection per request (full mTLS handshake + one GET, `Connection: "
      f"close`), {args.hs_concurrency} at once, {args.hs_duration} s; CPU per handshake likewise.")
    w(f"- (c) keep-alive at a fixed total rate of half of nginx's (a) rate in the same "
      f"round, {args.connections} connections on fixed schedules, latency counted from "
      "each request's scheduled time (no coordinated omission).")
    w(f"- (d) PSS (/proc/PID/smaps_rollup, summed over the proxy's processes) with "
      f"{' and '.join(idle)} idle mTLS connections (handshake + one request each, then held "
      f"{args.hold} s; measured 1 s after the last one opened), minus the PSS before, per "
      "connection.")
    w(f"- (e) gatehouse alone: {args.rotations} rotations of `frontend-credential` with "
      "`gatehouse apply`, timed from `apply` exiting (store written) to the first full "
      f"handshake that serves the new serial; then {args.hosts} hosts, each with its own "
      "Secret, Gateway server and VirtualService, started from a populated store: time to "
      f"`/ready`, to all credentials ACTIVE in `/credentials`, memory, and {args.updates} "
      "single-credential updates timed the same way.")
    w(f"- (f) keep-alive over HTTP/2 (ALPN `h2`; a connection that negotiates anything else "
      f"counts as an error): {args.h2_connections} connections × {args.h2_streams} streams "
      f"in flight each, {args.duration} s after a warm-up; CPU per request as in (a). The "
      "backends stay HTTP/1.1.")
    w(f"- (g) mixed load: {args.connections} HTTP/1.1 connections as in (a), but every "
      f"{args.mix_every}th request of a connection asks `Connection: close` and the next "
      "one opens a new connection (a full mTLS handshake, resumption off, counted in that "
      "request's latency): 90 % keep-alive requests, 10 % new handshakes.")
    w("- (h) gatehouse alone, (a)'s load with its data plane on `--workers 1`, then "
      "`--workers 2`. With 2 cores shared by the load generator and the backends, this "
      "shows the cost of a second worker more than the gain of one; see bench/README.md, "
      "\"Multi-core scaling\".\n")

    w("## Results\n")
    w("Sanity check before measuring (HTTP status): both hosts, and the frontend's mTLS "
      "connection asking for Host `inventory.foocorp.com`.\n")
    w("| proxy | frontend | inventory | cross-host |\n|---|---:|---:|---:|")
    with open(args.checks) as f:
        w(f.read().rstrip() + "\n")
    w(table("(a) keep-alive mTLS, HTTP/1.1", [
        ("requests/s", "ka_rps", "{:.0f}"), ("p50 ms", "ka_p50_ms", "{:.2f}"),
        ("p99 ms", "ka_p99_ms", "{:.2f}"), ("proxy CPU µs/request", "ka_cpu_us", "{:.1f}"),
        ("errors", "ka_errors", "{:.0f}")]))
    w(table("(b) full mTLS handshakes (new connection per request)", [
        ("handshakes/s", "hs_rate", "{:.0f}"), ("p50 ms", "hs_p50_ms", "{:.2f}"),
        ("proxy CPU µs/handshake", "hs_cpu_us", "{:.0f}"), ("resumed", "hs_resumed", "{:.0f}"),
        ("errors", "hs_errors", "{:.0f}")]))
    w(table("(c) latency at a fixed rate (half of nginx's maximum)", [
        ("target/s", "rate_target", "{:.0f}"), ("achieved/s", "rate_rps", "{:.0f}"),
        ("p50 ms", "rate_p50_ms", "{:.2f}"), ("p99 ms", "rate_p99_ms", "{:.2f}"),
        ("errors", "rate_errors", "{:.0f}")]))
    cols = []
    for n in idle:
        cols += [(f"KiB/conn @{n}", f"idle{n}_kib", "{:.1f}"),
                 (f"open @{n}", f"idle{n}_opened", "{:.0f}"),
                 (f"still open after hold @{n}", f"idle{n}_open_at_end", "{:.0f}")]
    cols.append(("PSS before, MiB", f"idle{idle[0]}_base_mib", "{:.1f}"))
    w(table("(d) memory per idle mTLS connection", cols))
    w(table("(e) gatehouse: credential push and many hosts", [
        ("push p50 ms", "push_p50_ms", "{:.1f}"), ("push p99 ms", "push_p99_ms", "{:.1f}"),
        ("served", "push_served", "{:.0f}"), ("apply ms", "apply_p50_ms", "{:.0f}")],
        ["gatehouse"]))
    w(table(f"(e) gatehouse with {args.hosts} hosts", [
        ("apply all s", "hosts_apply_s", "{:.1f}"), ("/ready s", "hosts_ready_s", "{:.2f}"),
        ("all ACTIVE s", "hosts_active_s", "{:.2f}"), ("ACTIVE", "hosts_active", "{:.0f}"),
        ("RSS MiB", "hosts_rss_mib", "{:.0f}"), ("PSS MiB", "hosts_pss_mib", "{:.0f}"),
        ("update p50 ms", "hosts_update_p50_ms", "{:.1f}"),
        ("update p99 ms", "hosts_update_p99_ms", "{:.1f}"),
        ("handshakes/s to the last host", "hosts_last_host_hs", "{:.0f}")], ["gatehouse"]))

    # (f), (g) and (h) are not measured with --keepalive-only.
    if "h2_rps" in data:
        w(table(f"(f) keep-alive mTLS, HTTP/2 ({args.h2_connections} connections × "
                f"{args.h2_streams} streams)", [
                    ("requests/s", "h2_rps", "{:.0f}"), ("p50 ms", "h2_p50_ms", "{:.2f}"),
                    ("p99 ms", "h2_p99_ms", "{:.2f}"),
                    ("proxy CPU µs/request", "h2_cpu_us", "{:.1f}"),
                    ("connections made", "h2_handshakes", "{:.0f}"),
                    ("errors", "h2_errors", "{:.0f}")]))
    if "mix_rps" in data:
        w(table(f"(g) mixed load: every {args.mix_every}th request on a new mTLS connection", [
            ("requests/s", "mix_rps", "{:.0f}"), ("p50 ms", "mix_p50_ms", "{:.2f}"),
            ("p99 ms", "mix_p99_ms", "{:.2f}"), ("proxy CPU µs/request", "mix_cpu_us", "{:.1f}"),
            ("full handshakes", "mix_handshakes", "{:.0f}"), ("errors", "mix_errors", "{:.0f}")]))
    if "scale_rps" in data:
        w(table("(h) gatehouse: keep-alive mTLS at 1 and 2 data-plane workers", [
            ("requests/s", "scale_rps", "{:.0f}"), ("p50 ms", "scale_p50_ms", "{:.2f}"),
            ("p99 ms", "scale_p99_ms", "{:.2f}"),
            ("proxy CPU µs/request", "scale_cpu_us", "{:.1f}"),
            ("errors", "scale_errors", "{:.0f}")], ["gatehouse-w1", "gatehouse-w2"]))
    w1, w2 = med("scale_rps", "gatehouse-w1"), med("scale_rps", "gatehouse-w2")
    if w1 and w2:
        w(f"2 workers / 1 worker: {w2 / w1:.2f} × the requests/s (2 cores, shared with the "
          "load generator and the backends).\n")

    if "gatehouse-base" in proxies:
        w("## Against the baseline build\n")
        w("| metric | gatehouse | gatehouse-base | change |\n|---|---:|---:|---:|")
        for name, metric in [("keep-alive requests/s", "ka_rps"),
                             ("CPU per request µs", "ka_cpu_us"),
                             ("full handshakes/s", "hs_rate"),
                             ("HTTP/2 keep-alive requests/s", "h2_rps"),
                             ("mixed load requests/s", "mix_rps")]:
            g, b = med(metric, "gatehouse"), med(metric, "gatehouse-base")
            if g is None or b is None or b == 0:
                continue
            w(f"| {name} | {g:.1f} | {b:.1f} | {100 * (g / b - 1):+.1f} % |")
        w("")

    w("## The issue's goals\n")
    w("| goal | gatehouse | best peer | ratio | met |\n|---|---:|---:|---:|:---:|")

    def best(metric, higher):
        vals = [(med(metric, p), p) for p in PEERS if med(metric, p) is not None]
        if not vals:
            return None, "?"
        return max(vals) if higher else min(vals)

    def goal(name, metric, higher, limit, fmt):
        g = med(metric, "gatehouse")
        b, who = best(metric, higher)
        if g is None or b is None or b == 0:
            w(f"| {name} | – | – | – | – |")
            return
        ratio = g / b
        ok = ratio >= limit if higher else ratio <= limit
        w(f"| {name} | {fmt.format(g)} | {fmt.format(b)} ({who}) | {ratio:.2f} × | "
          f"{'yes' if ok else 'no'} |")

    goal("keep-alive requests/s ≥ 1.25 × best peer", "ka_rps", True, 1.25, "{:.0f}")
    goal("CPU per request ≤ 0.8 × best peer", "ka_cpu_us", False, 0.8, "{:.1f} µs")
    goal("HTTP/2 keep-alive requests/s ≥ 1.25 × best peer", "h2_rps", True, 1.25, "{:.0f}")
    goal("full handshakes/s ≥ 1.5 × best peer", "hs_rate", True, 1.5, "{:.0f}")
    goal("p99 at the fixed rate ≤ best peer", "rate_p99_ms", False, 1.0, "{:.2f} ms")
    for n in idle:
        goal(f"memory per idle connection @{n} ≤ 0.8 × best peer", f"idle{n}_kib", False,
             0.8, "{:.1f} KiB")

    def absolute(name, metric, limit, fmt):
        g = med(metric, "gatehouse")
        if g is None:
            w(f"| {name} | – | | | – |")
            return
        w(f"| {name} | {fmt.format(g)} | | | {'yes' if g < limit else 'no'} |")

    absolute("CPU per full mTLS handshake ≤ 300 µs", "hs_cpu_us", 300.001, "{:.0f} µs")
    absolute("credential push p99 < 50 ms", "push_p99_ms", 50, "{:.1f} ms")
    absolute(f"{args.hosts} hosts: ready < 3 s", "hosts_active_s", 3, "{:.2f} s")
    absolute(f"{args.hosts} hosts: memory < 256 MB (RSS)", "hosts_rss_mib", 256 / 1.048576,
             "{:.0f} MiB")
    absolute(f"{args.hosts} hosts: one credential update < 10 ms (p50)", "hosts_update_p50_ms",
             10, "{:.1f} ms")
    w("")
    w("Raw measurements: `bench/RESULTS.jsonl` (one line per round, proxy and metric).\n")
    with open(args.out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
