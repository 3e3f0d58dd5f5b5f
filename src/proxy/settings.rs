//! The edge defaults (see docs/edge-defaults.md): each limit is a setting.

use std::time::Duration;

use super::path::EscapedSlashes;

/// Limits and timeouts of the data plane.
#[derive(Debug, Clone)]
pub struct Settings {
    pub handshake_timeout: Duration,
    pub request_headers_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    pub upstream_response_timeout: Duration,
    pub max_request_header_bytes: usize,
    pub max_request_headers: usize,
    /// Not applied at present: hyper's HTTP/1 buffer cap (read and write)
    /// is `max_request_header_bytes` (see `handler::http_builder`).
    pub connection_buffer_bytes: usize,
    pub h2_max_concurrent_streams: u32,
    pub h2_stream_window: u32,
    pub h2_connection_window: u32,
    /// HTTP/2 frames that ask for nothing (PING, SETTINGS, RST_STREAM,
    /// PRIORITY, empty and unknown frames) a client may send per second on
    /// one connection before it gets GOAWAY ENHANCE_YOUR_CALM (`h2watch`).
    pub h2_max_control_frames: u32,
    pub max_connections_per_listener: usize,
    pub max_connections_total: usize,
    /// Envoy's `xff_num_trusted_hops`: how many proxies in front of
    /// gatehouse append to `x-forwarded-for` and are trusted to (0: none,
    /// the socket's peer is the client).
    pub trusted_hops: u32,
    /// Envoy's `path_with_escaped_slashes_action`: what `%2F`, `%5C` (and
    /// a raw `\`) in a path get.
    pub path_with_escaped_slashes: EscapedSlashes,
    /// The most request body bytes one request may send (Content-Length
    /// or what actually arrives); 0: no limit, as Envoy (see
    /// docs/edge-defaults.md for why).
    pub max_request_body_bytes: u64,
    /// What to do with a request header whose name holds `_` (Envoy's
    /// `headers_with_underscores_action`).
    pub headers_with_underscores: UnderscoreAction,
    /// Envoy's `stream_idle_timeout`: how long a request body may stall
    /// (slow POST) or a write to the client stay pending (slow read).
    pub stream_idle_timeout: Duration,
    /// How long before a serving certificate's `notAfter` it is reported
    /// EXPIRING, with a warning log (0: only EXPIRED is reported).
    pub expiry_warning: Duration,
    /// `--proxy-protocol`: every data-plane connection starts with a PROXY
    /// protocol header (v1 or v2) from a load balancer in front, whose
    /// source address stands for the client (`proxy_protocol.rs`).
    pub proxy_protocol: bool,
}

/// Envoy's `headers_with_underscores_action`: backends (CGI, many
/// frameworks) fold `_` into `-`, so `X_Forwarded_For` could pass for
/// `X-Forwarded-For` behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnderscoreAction {
    /// 400 (HTTP/2: the stream's answer is 400 too).
    #[default]
    Reject,
    /// The header is removed before routing: no route and no backend sees it.
    Drop,
    /// Forwarded as sent.
    Allow,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            handshake_timeout: Duration::from_secs(10),
            request_headers_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(300),
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_response_timeout: Duration::from_secs(15),
            max_request_header_bytes: 60 * 1024,
            max_request_headers: 100,
            connection_buffer_bytes: 32 * 1024,
            h2_max_concurrent_streams: 100,
            h2_stream_window: 64 * 1024,
            h2_connection_window: 1024 * 1024,
            h2_max_control_frames: 100,
            max_connections_per_listener: 10_000,
            max_connections_total: 50_000,
            trusted_hops: 0,
            path_with_escaped_slashes: EscapedSlashes::Reject,
            max_request_body_bytes: 0,
            headers_with_underscores: UnderscoreAction::Reject,
            stream_idle_timeout: Duration::from_secs(300),
            expiry_warning: Duration::from_secs(7 * 24 * 3600),
            proxy_protocol: false,
        }
    }
}
