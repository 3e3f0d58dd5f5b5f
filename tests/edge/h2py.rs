//! An HTTP/2 client that writes what curl will not: Python's `h2` frame
//! library (Debian's python3-h2) over TLS with the walkthrough's client
//! certificate. One request per run; it reports the response status, a
//! stream reset or GOAWAY, and whether the connection closed.

use std::time::Duration;

use crate::support::{Walkthrough, run_bounded_input};

/// The client: reads a JSON request on stdin, prints a JSON report.
const CLIENT: &str = r#"
import json, socket, ssl, sys, time
import h2.config, h2.connection, h2.events
a = json.load(sys.stdin)
ctx = ssl.create_default_context(cafile=a["ca"])
ctx.load_cert_chain(a["cert"], a["key"])
ctx.set_alpn_protocols(["h2"])
raw = socket.create_connection(("127.0.0.1", a["port"]), timeout=0.2)
tls = ctx.wrap_socket(raw, server_hostname=a["host"])
assert tls.selected_alpn_protocol() == "h2", tls.selected_alpn_protocol()
conn = h2.connection.H2Connection(h2.config.H2Configuration(
    client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
    normalize_outbound_headers=False))
conn.initiate_connection()
headers = [(":method", a["method"]), (":scheme", "https"),
           (":authority", a["host"]), (":path", a["path"])]
headers += [(n, v) for n, v in a["headers"]]
body = a["body"]
conn.send_headers(1, headers, end_stream=not body and a["end"])
tls.sendall(conn.data_to_send())
out = {"status": None, "reset": None, "goaway": None, "closed": False, "body": ""}
def pump(until):
    while time.time() < until:
        try:
            data = tls.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except OSError:
            out["closed"] = True
            return True
        if not data:
            out["closed"] = True
            return True
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                out["status"] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                out["body"] += ev.data.decode("utf-8", "replace")
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                out["reset"] = int(ev.error_code)
                return True
            elif isinstance(ev, h2.events.StreamEnded):
                return True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                out["goaway"] = int(ev.error_code)
                return True
        try:
            tls.sendall(conn.data_to_send())
        except OSError:
            out["closed"] = True
            return True
    return False
done = False
for i, size in enumerate(body):
    if i > 0:
        done = pump(time.time() + a["pause"])
        if done:
            break
    last = i == len(body) - 1
    try:
        conn.send_data(1, b"x" * size, end_stream=last and a["end"])
        tls.sendall(conn.data_to_send())
    except Exception as e:
        out["send_error"] = repr(e)
        break
if not done:
    pump(time.time() + a["wait"])
print(json.dumps(out))
"#;

/// One HTTP/2 request as the client sends it.
pub struct H2Request {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// DATA frames of these sizes, `pause` apart.
    pub body: Vec<usize>,
    pub pause: Duration,
    /// END_STREAM after the last frame (or on HEADERS without a body).
    pub end: bool,
    /// How long to wait for the answer after the last frame.
    pub wait: Duration,
}

impl Default for H2Request {
    fn default() -> Self {
        H2Request {
            method: "GET",
            path: "/".into(),
            headers: Vec::new(),
            body: Vec::new(),
            pause: Duration::ZERO,
            end: true,
            wait: Duration::from_secs(5),
        }
    }
}

/// What came back.
#[derive(Debug, serde::Deserialize)]
pub struct H2Answer {
    pub status: Option<u16>,
    /// RST_STREAM's error code.
    pub reset: Option<u32>,
    /// GOAWAY's error code.
    pub goaway: Option<u32>,
    pub closed: bool,
    pub body: String,
}

/// A Python with the `h2` package: `python3` on PATH, else Debian's.
fn python() -> &'static str {
    for p in ["python3", "/usr/bin/python3"] {
        let mut c = crate::support::command(p);
        c.args(["-c", "import h2"]);
        if run_bounded_input(c, b"", Duration::from_secs(20)).code == Some(0) {
            return p;
        }
    }
    panic!("no python3 with the h2 package: install python3-h2 (scripts/test.sh does)");
}

/// Sends `req` to `port` as the walkthrough's client of `host`.
pub fn send(w: &Walkthrough, port: u16, host: &str, req: &H2Request) -> H2Answer {
    let pki = w.site.pki(host);
    let input = serde_json::json!({
        "port": port,
        "host": host,
        "ca": w.site.path(&pki.ca_chain),
        "cert": w.site.path(&pki.client_cert),
        "key": w.site.path(&pki.client_key),
        "method": req.method,
        "path": req.path,
        "headers": req.headers,
        "body": req.body,
        "pause": req.pause.as_secs_f64(),
        "end": req.end,
        "wait": req.wait.as_secs_f64(),
    });
    let mut c = w.site.program(python());
    c.args(["-c", CLIENT]);
    let out = run_bounded_input(c, input.to_string().as_bytes(), Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "the h2 client failed: {out:?}");
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("h2 client printed {:?}: {e}", out.stdout))
}
