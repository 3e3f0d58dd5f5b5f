//! Waiting between two turns of the control loop: for the store's watch,
//! for file-mounted certificates to change, for the time to list an
//! unreachable store again, to retry a listener that could not bind, or
//! for the instant a serving certificate nears or passes its `notAfter`.
//!
//! It sleeps on events only (no periodic ticks while idle; the expiry timer
//! fires at most once a day or at a certificate's warning or expiry
//! instant), so an idle gateway costs no CPU here. It must never compile or publish: that is `publish`.

use std::time::Duration;

use super::Loop;
use super::start::{FIRST_BACKOFF, MAX_BACKOFF, sync};
use crate::store::{Event, StoreError};

/// How often a Gateway port that could not be bound is tried again.
const LISTENER_RETRY: Duration = Duration::from_secs(1);

/// What woke the control loop.
enum Wake {
    Event(Option<Result<Event, StoreError>>),
    Files,
    Resync,
    RetryListeners,
    /// A serving certificate's date state changes (see `expiry.rs`).
    Expiry,
}

impl Loop {
    /// Waits for a change, then takes every change already queued so a
    /// burst of events costs one compile. Returns the store events (file
    /// changes land in `changed_secrets`).
    pub(super) async fn wait(&mut self) -> Vec<Result<Event, StoreError>> {
        let mut batch = Vec::new();
        loop {
            match self.next_wake().await {
                Wake::Event(Some(e)) => {
                    batch.push(e);
                    break;
                }
                Wake::Event(None) => {
                    batch.push(Err(StoreError::Unavailable(
                        "the store's watch ended".into(),
                    )));
                    break;
                }
                Wake::Files => {
                    let changed = self.files.poll();
                    if !changed.is_empty() {
                        self.changed_secrets.extend(changed);
                        break;
                    }
                }
                Wake::Resync => {
                    if self.resync().await {
                        break;
                    }
                }
                Wake::Expiry => {
                    self.expiry_at = None;
                    break;
                }
                Wake::RetryListeners => {
                    if let Some(snap) = self.published.clone() {
                        self.listeners.reconcile(&snap, &self.opts, &self.shared);
                    }
                    if !self.listeners.has_failures() {
                        break;
                    }
                }
            }
        }
        if let Some(rx) = self.events.as_mut() {
            while let Ok(e) = rx.try_recv() {
                batch.push(e);
            }
        }
        batch
    }

    async fn next_wake(&mut self) -> Wake {
        let files_watched = !self.files.is_empty();
        let retry_listeners = self.listeners.has_failures();
        let expiry_at = self.expiry_at;
        let (events, files) = (&mut self.events, &mut self.files);
        tokio::select! {
            e = async { events.as_mut()?.recv().await }, if events.is_some() => Wake::Event(e),
            () = files.changed(), if files_watched => Wake::Files,
            () = tokio::time::sleep_until(self.retry_at), if events.is_none() => Wake::Resync,
            () = tokio::time::sleep(LISTENER_RETRY), if retry_listeners => Wake::RetryListeners,
            () = async { if let Some(t) = expiry_at { tokio::time::sleep_until(t).await } }, if expiry_at.is_some() => Wake::Expiry,
        }
    }

    /// Lists and watches the store again; true once in sync.
    async fn resync(&mut self) -> bool {
        match sync(&self.store, &mut self.state).await {
            Ok((rev, rx)) => {
                self.structural = true;
                tracing::info!(
                    revision = rev,
                    was = self.source.as_str(),
                    "in sync with the store again"
                );
                self.revision = rev;
                self.events = Some(rx);
                self.source = super::Source::Live;
                self.backoff = FIRST_BACKOFF;
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "the store is still unreachable");
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                self.retry_at = tokio::time::Instant::now() + self.backoff;
                false
            }
        }
    }
}
