//! Log: the access-log line of one request (text or JSON), with the
//! client, SNI, host, request line, status, size, time, upstream and the
//! client certificate's subject. Never a header value or a key.

use super::super::ConnInfo;
use super::facts::Facts;

pub(super) struct LogLine<'a> {
    pub info: &'a ConnInfo,
    pub host: &'a str,
    pub method: String,
    pub path: String,
}

impl LogLine<'_> {
    pub fn emit(&self, status: u16, bytes: Option<u64>, facts: &Facts, json: bool) {
        let ms = facts.start.elapsed().as_secs_f64() * 1000.0;
        let subject = self
            .info
            .client_cert
            .as_ref()
            .map_or("-", super::super::ClientCert::subject);
        let sni = self.info.sni.as_deref().unwrap_or("-");
        let upstream = facts
            .upstream
            .map_or_else(|| "-".to_owned(), |a| a.to_string());
        let bytes = bytes.map_or_else(|| "-".to_owned(), |b| b.to_string());
        if json {
            tracing::info!(target: "access", client = %self.info.peer, sni, host = self.host, method = %self.method, path = %self.path, status, bytes = %bytes, duration_ms = ms, upstream = %upstream, client_cert = subject, "request");
        } else {
            tracing::info!(target: "access", "{} sni={} host={} \"{} {}\" {} {} {:.3}ms upstream={} cert=\"{}\"", self.info.peer, sni, self.host, self.method, self.path, status, bytes, ms, upstream, subject);
        }
    }
}
