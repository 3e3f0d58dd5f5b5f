//! Taking a batch of store events into the control loop's state: the last
//! good objects, the secrets that changed, and whether anything else did.
//!
//! A lost watch never clears what is served: the loop keeps serving the
//! last good config and lists the store again later.

use super::{Loop, Source};
use crate::store::{Event, EventType, StoreError};

impl Loop {
    pub(super) fn apply(&mut self, batch: Vec<Result<Event, StoreError>>) {
        let batch_start = std::time::Instant::now();
        let batch_len = batch.len();
        for e in batch {
            match e {
                Ok(e) => {
                    self.revision = self.revision.max(e.revision);
                    if e.object.key.kind != "Secret" || self.state.has_gateway_api() {
                        self.structural = true;
                    } else if e.object.key.namespace == self.opts.namespace {
                        self.changed_secrets.push(e.object.key.name.clone());
                    }
                    match e.event_type {
                        EventType::Added | EventType::Modified => self.state.upsert(e.object),
                        EventType::Deleted => self.state.remove(&e.object.key),
                    }
                }
                Err(e) => {
                    // Keep serving what we have; list and watch again later.
                    tracing::warn!(error = %e, "lost the store's watch: serving the last good config, reconnecting");
                    self.events = None;
                    if self.source == Source::Live {
                        self.source = Source::Behind;
                    }
                    self.retry_at = tokio::time::Instant::now() + self.backoff;
                    break;
                }
            }
        }
        tracing::debug!(
            events = batch_len,
            apply_us = batch_start.elapsed().as_micros() as u64,
            "applied a batch"
        );
    }
}
