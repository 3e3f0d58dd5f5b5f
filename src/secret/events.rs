//! The last SDS events (pushed, rejected with the reason, removed), newest
//! first, for the admin view's `/config_dump`: what an operator asks after
//! a rotation ("did it land, and if not why?") without reading the log.
//!
//! A bounded ring: it never grows past [`CAPACITY`], and it records
//! resource names and reasons only, never key material.

use std::collections::VecDeque;
use std::sync::Arc;

use super::credential::now_unix;

/// How many events are kept.
pub const CAPACITY: usize = 50;

/// What happened to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A new credential is served.
    Pushed,
    /// A new version was refused; the last good one keeps serving.
    Rejected,
    /// The secret is gone; its servers refuse new handshakes.
    Removed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Pushed => "pushed",
            EventKind::Rejected => "rejected",
            EventKind::Removed => "removed",
        }
    }
}

/// One SDS event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdsEvent {
    /// Unix seconds.
    pub time: i64,
    /// The SDS resource name (`frontend-credential`, `frontend-credential-cacert`).
    pub resource: String,
    pub kind: EventKind,
    /// Why it was rejected or removed.
    pub reason: Option<String>,
}

/// The ring of the last [`CAPACITY`] events.
#[derive(Debug, Default)]
pub struct Events {
    ring: VecDeque<SdsEvent>,
    /// Whether anything was recorded since the last [`Events::view`].
    changed: bool,
    view: Arc<Vec<SdsEvent>>,
}

impl Events {
    pub fn record(&mut self, resource: &str, kind: EventKind, reason: Option<String>) {
        if self.ring.len() == CAPACITY {
            self.ring.pop_back();
        }
        self.ring.push_front(SdsEvent {
            time: now_unix(),
            resource: resource.to_owned(),
            kind,
            reason,
        });
        self.changed = true;
    }

    /// The events, newest first; shared until the next one is recorded.
    pub fn view(&mut self) -> Arc<Vec<SdsEvent>> {
        if self.changed {
            self.view = Arc::new(self.ring.iter().cloned().collect());
            self.changed = false;
        }
        self.view.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_and_bounded() {
        let mut e = Events::default();
        for i in 0..(CAPACITY + 5) {
            e.record(&format!("r{i}"), EventKind::Pushed, None);
        }
        e.record("bad", EventKind::Rejected, Some("why".into()));
        let v = e.view();
        assert_eq!(v.len(), CAPACITY);
        assert_eq!(v[0].resource, "bad");
        assert_eq!(v[0].reason.as_deref(), Some("why"));
        assert_eq!(v[1].resource, format!("r{}", CAPACITY + 4));
        assert!(Arc::ptr_eq(&v, &e.view()));
    }
}
