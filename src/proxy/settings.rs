//! The edge defaults (see docs/edge-defaults.md): each limit is a setting.

use std::time::Duration;

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
        }
    }
}
