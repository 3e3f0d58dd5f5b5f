//! The real `curl`, with the walkthrough's flags, and what it printed:
//! the body, the status and the response headers of one request, or the
//! status and time of each of many requests on one connection.

use std::path::PathBuf;
use std::time::Duration;

use super::{COMMAND_TIMEOUT, Site, run_bounded};

impl Site {
    /// The walkthrough's curl command for `host` against `port`:
    /// `curl -HHost:HOST --resolve HOST:PORT:127.0.0.1 --cacert … --cert …
    /// --key … https://HOST:PORT/`.
    pub fn walkthrough_curl(&self, host: &str, port: u16) -> Curl<'_> {
        let pki = self.pki(host);
        Curl {
            site: self,
            host_header: Some(host.to_owned()),
            resolve: Some((host.to_owned(), port)),
            cacert: Some(pki.ca_chain.clone()),
            client: Some((pki.client_cert.clone(), pki.client_key.clone())),
            url: format!("https://{host}:{port}/"),
            extra: Vec::new(),
        }
    }

    /// A bare `curl URL`.
    pub fn curl(&self, url: &str) -> Curl<'_> {
        Curl {
            site: self,
            host_header: None,
            resolve: None,
            cacert: None,
            client: None,
            url: url.to_owned(),
            extra: Vec::new(),
        }
    }
}

/// A `curl` command line being built.
pub struct Curl<'a> {
    site: &'a Site,
    host_header: Option<String>,
    resolve: Option<(String, u16)>,
    cacert: Option<PathBuf>,
    client: Option<(PathBuf, PathBuf)>,
    url: String,
    extra: Vec<String>,
}

/// What curl did: its exit code, the body, and its `%{json}` write-out.
#[derive(Debug)]
pub struct CurlOut {
    pub code: Option<i32>,
    pub body: String,
    /// `%{http_code}`: 0 when no HTTP response arrived (curl prints `000`).
    pub status: u16,
    /// `%{http_version}`: `1.1`, `2`, or `0`.
    pub http_version: String,
    pub redirect_url: Option<String>,
    /// `%{header_json}`: the last response's headers, names lower-cased,
    /// each with its values in order.
    pub headers: std::collections::BTreeMap<String, Vec<String>>,
    pub stderr: String,
}

impl Curl<'_> {
    /// Replaces the path of the URL (`/api`, `/x?y=1`).
    pub fn path(mut self, path: &str) -> Self {
        let scheme_end = self.url.find("://").map_or(0, |i| i + 3);
        let path_start = self.url[scheme_end..]
            .find('/')
            .map_or(self.url.len(), |i| scheme_end + i);
        self.url.truncate(path_start);
        self.url.push_str(path);
        self
    }

    /// `-HHost:HOST` in place of the current one.
    pub fn host_header(mut self, host: &str) -> Self {
        self.host_header = Some(host.to_owned());
        self
    }

    pub fn resolve(mut self, host: &str, port: u16) -> Self {
        self.resolve = Some((host.to_owned(), port));
        self
    }

    pub fn cacert(mut self, path: impl Into<PathBuf>) -> Self {
        self.cacert = Some(path.into());
        self
    }

    /// `--cert CERT --key KEY` in place of the current pair.
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client = Some((cert.into(), key.into()));
        self
    }

    /// Drops `--cert` and `--key`.
    pub fn no_client_cert(mut self) -> Self {
        self.client = None;
        self
    }

    /// Adds `-H 'NAME: VALUE'`.
    pub fn header(mut self, header: &str) -> Self {
        self.extra.push("-H".into());
        self.extra.push(header.to_owned());
        self
    }

    pub fn http2(self) -> Self {
        self.arg("--http2")
    }

    pub fn http1_1(self) -> Self {
        self.arg("--http1.1")
    }

    /// `--http2` when `http2`, else `--http1.1`.
    pub fn http2_if(self, http2: bool) -> Self {
        if http2 { self.http2() } else { self.http1_1() }
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_owned());
        self
    }

    /// curl with every flag set so far, writing `write_out` (`-w`) after
    /// each transfer, for `url`.
    fn command(&self, write_out: &str, url: &str) -> std::process::Command {
        // In the site, with a scrubbed environment: no `~/.curlrc`, CA
        // bundle or proxy of the developer's.
        let mut c = self.site.program("curl");
        c.args(["-sS", "--max-time", "10", "-w", write_out]);
        if let Some(h) = &self.host_header {
            c.arg(format!("-HHost:{h}"));
        }
        if let Some((host, port)) = &self.resolve {
            c.arg("--resolve").arg(format!("{host}:{port}:127.0.0.1"));
        }
        if let Some(ca) = &self.cacert {
            c.arg("--cacert").arg(ca);
        }
        if let Some((cert, key)) = &self.client {
            c.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        c.args(&self.extra).arg(url);
        c
    }

    pub fn run(self) -> CurlOut {
        let c = self.command(
            &format!("\\n%{{json}}{HEADERS_MARK}%{{header_json}}"),
            &self.url,
        );
        let out = run_bounded(c, COMMAND_TIMEOUT);
        let (rest, headers) = out
            .stdout
            .rsplit_once(HEADERS_MARK)
            .unwrap_or_else(|| panic!("curl printed no write-out: {out:?}"));
        let (body, json) = rest
            .rsplit_once('\n')
            .unwrap_or_else(|| panic!("curl printed no write-out: {out:?}"));
        let w: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("curl write-out {json:?}: {e}"));
        let headers = serde_json::from_str(headers)
            .unwrap_or_else(|e| panic!("curl header write-out {headers:?}: {e}"));
        CurlOut {
            code: out.code,
            body: body.to_owned(),
            status: u16::try_from(w["http_code"].as_u64().unwrap_or(0)).unwrap(),
            http_version: w["http_version"].as_str().unwrap_or("").to_owned(),
            redirect_url: w["redirect_url"].as_str().map(str::to_owned),
            headers,
            stderr: out.stderr,
        }
    }

    /// The request `count` times from one curl process (URL globbing:
    /// `?n=[1-count]` is added to the URL, so one kept connection carries
    /// them all), bodies discarded, within `timeout`: each transfer's
    /// status and total time, in order.
    pub fn run_repeated(self, count: usize, timeout: Duration) -> Vec<Transfer> {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}n=[1-{count}]", self.url);
        let mut c = self.command("%{http_code} %{time_total}\\n", &url);
        c.args(["-o", "/dev/null"]);
        let out = run_bounded(c, timeout);
        let transfers: Vec<Transfer> = out
            .stdout
            .lines()
            .map(|l| {
                let (status, secs) = l
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("curl write-out line {l:?}"));
                Transfer {
                    status: status.parse().unwrap(),
                    time: Duration::from_secs_f64(secs.parse().unwrap()),
                }
            })
            .collect();
        assert_eq!(
            transfers.len(),
            count,
            "curl ran {} of {count}: {out:?}",
            transfers.len()
        );
        transfers
    }
}

/// Between curl's `%{json}` and `%{header_json}` write-outs.
const HEADERS_MARK: &str = "\n--gatehouse-test-headers--\n";

/// One transfer of [`Curl::run_repeated`].
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// `%{http_code}`: 0 when no response came.
    pub status: u16,
    /// `%{time_total}`.
    pub time: Duration,
}

impl CurlOut {
    /// The one value of response header `name` (lower-case), or `None`;
    /// panics if it is repeated.
    #[track_caller]
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.headers.get(name)?;
        assert_eq!(all.len(), 1, "header {name}: {all:?}");
        Some(all[0].as_str())
    }

    /// Exit 0, status 200, and exactly `body` (plus the backend's newline).
    #[track_caller]
    pub fn assert_body(&self, body: &str) {
        assert_eq!(
            (self.code, self.status, self.body.as_str()),
            (Some(0), 200, format!("{body}\n").as_str()),
            "{self:?}"
        );
    }

    /// A status with curl exiting 0.
    #[track_caller]
    pub fn assert_status(&self, status: u16) {
        assert_eq!((self.code, self.status), (Some(0), status), "{self:?}");
    }

    /// The TLS handshake was refused: curl failed and no HTTP status came back.
    #[track_caller]
    pub fn assert_refused(&self) {
        assert!(
            self.code.is_some_and(|c| c != 0) && self.status == 0 && self.body.is_empty(),
            "expected the TLS handshake to be refused (curl fails, %{{http_code}} 000), got {self:?}"
        );
    }
}
