//! Request ids: the `x-request-id` the gateway sends upstream, and the id
//! the access log gives a request answered without a backend. Envoy
//! generates one for every request; so does gatehouse.
//!
//! It must never take an id from the client (one could collide with or
//! impersonate another request's trace) and never ask the system for
//! randomness per request: a random per-process prefix and a counter.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh id in UUID form (version 4 and variant bits set): unique in
/// this process, and across processes by the random prefix.
pub(super) fn new() -> String {
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        if aws_lc_rs::rand::fill(&mut b).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            b = (t as u64).to_le_bytes();
        }
        b
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(prefix);
    b[8..].copy_from_slice(&n.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut id = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        crate::crypto::push_hex(&mut id, *byte);
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_uuids_and_differ() {
        let (a, b) = (super::new(), super::new());
        assert_ne!(a, b);
        for id in [&a, &b] {
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert_eq!(id.as_bytes()[14], b'4', "version 4: {id}");
            assert!(id.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
        }
    }
}
