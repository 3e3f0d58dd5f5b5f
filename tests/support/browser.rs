//! [`Browser`]: headless Chromium (Debian's `chromium`) driven over
//! WebDriver by `chromedriver` (Debian's `chromium-driver`), spoken as
//! plain HTTP and JSON from the test: open a page, run a script in it and
//! read its answer, set the viewport, take a screenshot.
//!
//! chromedriver runs as a child process on a free loopback port with a
//! fresh profile directory; both go away when the `Browser` is dropped.
//! Every call is bounded by [`CALL_TIMEOUT`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::{START_TIMEOUT, command, free_port, try_poll};

/// The longest one WebDriver call may take (a session start launches
/// Chromium; a screenshot renders the page).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Chromium's flags for a headless run as root in a container.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

/// One Chromium session behind its own chromedriver.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(profile.path().join("chromedriver.log")).unwrap();
        let driver = command("chromedriver")
            .arg(format!("--port={port}"))
            .env("HOME", profile.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start chromedriver (Debian: apt-get install chromium chromium-driver): {e}")
            });
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut b = Browser {
            driver,
            addr,
            session: String::new(),
            profile,
        };
        try_poll(START_TIMEOUT, || {
            let v = b.call("GET", "/status", None).ok()?;
            v["value"]["ready"].as_bool()?.then_some(())
        })
        .unwrap_or_else(|| panic!("chromedriver not ready: {}", b.log()));
        let data_dir = format!(
            "--user-data-dir={}",
            b.profile.path().join("chromium").display()
        );
        let mut args: Vec<&str> = CHROMIUM_ARGS.to_vec();
        args.push(&data_dir);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let v = b
            .call("POST", "/session", Some(caps))
            .unwrap_or_else(|e| panic!("no Chromium session: {e}\n{}", b.log()));
        b.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {v}\n{}", b.log()))
            .to_owned();
        b
    }

    /// chromedriver's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// A call in this session (`path` after `/session/ID`); panics on an error.
    #[track_caller]
    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        match self.call(method, &full, body) {
            Ok(v) => v["value"].clone(),
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body: `return …`) in the page; its answer.
    pub fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Makes the page's viewport `width` × `height` CSS pixels (a phone's
    /// when `mobile`: the page's `<meta name=viewport>` applies).
    pub fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.session_call(
            "POST",
            "/goog/cdp/execute",
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                    "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile,
                }}),
            ),
        );
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.session_call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }

    /// One HTTP/1.1 request to chromedriver on a fresh connection: the
    /// JSON it answers, or why not.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut s =
            TcpStream::connect_timeout(&self.addr, CALL_TIMEOUT).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(CALL_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(CALL_TIMEOUT)).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let (head, body) = read_response(&mut s)?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        let ok = head.split_whitespace().nth(1) == Some("200");
        if ok { Ok(v) } else { Err(v.to_string()) }
    }
}

/// One HTTP/1.1 response with a `Content-Length` (chromedriver keeps the
/// connection open, so the body ends by its length): the head and the body.
fn read_response(s: &mut TcpStream) -> Result<(String, String), String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let (head, want) = loop {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the end of the headers".into());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let len = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .ok_or_else(|| format!("no Content-Length in {head:?}"))?;
            raw.drain(..end + 4);
            break (head, len);
        }
    };
    while raw.len() < want {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the end of the body".into());
        }
        raw.extend_from_slice(&buf[..n]);
    }
    Ok((head, String::from_utf8_lossy(&raw[..want]).into_owned()))
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
