//! The open-files limit: `gatehouse run` raises its soft limit to the hard
//! one at start, and derives its default connection limit from it, so the
//! process refuses (or sheds) connections before `accept` fails with
//! EMFILE.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// File descriptors kept aside from client connections: the listeners, the
/// admin endpoint, the store, certificate files, inotify, the runtime's
/// own, and upstream connections in the pool.
pub const RESERVED: u64 = 256;
/// The default total connection limit never exceeds this
/// (docs/edge-defaults.md), however many files the process may open.
pub const MAX_DEFAULT_CONNECTIONS: u64 = 50_000;
/// What "unlimited" is taken to mean (Linux's default `fs.nr_open`).
const UNLIMITED: u64 = 1 << 20;

/// The limit before and after the raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nofile {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

impl Nofile {
    /// The default total connection limit for this many files: each client
    /// connection may hold an upstream one, so half of what is left after
    /// the reserve, and at most [`MAX_DEFAULT_CONNECTIONS`].
    pub fn connection_limit(&self) -> usize {
        let n = (self.soft.saturating_sub(RESERVED) / 2).clamp(1, MAX_DEFAULT_CONNECTIONS);
        usize::try_from(n).unwrap_or(usize::MAX)
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns both (the soft
/// limit stays where it was if the raise is refused).
pub fn raise() -> Nofile {
    let now = getrlimit(Resource::Nofile);
    let soft_before = now.current.unwrap_or(UNLIMITED);
    let hard = now.maximum.unwrap_or(UNLIMITED);
    let mut soft = soft_before;
    if soft_before < hard {
        let raised = Rlimit {
            current: Some(hard),
            maximum: now.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => soft = hard,
            Err(e) => {
                tracing::warn!(soft_before, hard, error = %e, "cannot raise the open-files limit")
            }
        }
    }
    Nofile {
        soft_before,
        soft,
        hard,
    }
}

#[cfg(test)]
mod tests {
    use super::Nofile;

    #[test]
    fn the_default_connection_limit_leaves_room_for_upstreams_and_files() {
        let limit = |soft| {
            Nofile {
                soft_before: 0,
                soft,
                hard: soft,
            }
            .connection_limit()
        };
        assert_eq!(limit(1024), 384);
        assert_eq!(limit(20_000), 9_872);
        assert_eq!(limit(1 << 20), 50_000);
        assert_eq!(limit(100), 1);
    }
}
