//! Which member a call goes to: the one that answered last, then each other
//! one in turn while it cannot be reached, and round again, with a pause,
//! while the cluster says it is electing a leader.
//!
//! It must never send a call twice unless the call is safe to repeat, and
//! never wait past [`CALL_TIMEOUT`] for a cluster that no member answers for.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::client::Member;
use super::{CALL_TIMEOUT, EtcdStore};
use crate::store::StoreError;

/// Whether a member answered that the cluster cannot serve right now but
/// soon will (a leader election): etcd's own client retries reads on these.
fn cluster_busy(e: &StoreError) -> bool {
    const BUSY: &[&str] = &[
        "etcdserver: leader changed",
        "etcdserver: no leader",
        "etcdserver: request timed out",
        "etcdserver: too many requests",
        "etcdserver: unhealthy cluster",
    ];
    matches!(e, StoreError::Unavailable(m) if BUSY.iter().any(|b| m.contains(b)))
}

impl EtcdStore {
    /// The connection to member `i`, made on first use.
    async fn member_at(&self, i: usize) -> Result<Member, StoreError> {
        let m = self.clients[i]
            .get_or_try_init(|| async {
                let endpoint = self.opts.endpoints.get(i).ok_or_else(|| {
                    StoreError::BadUrl("the etcd store URL names no endpoint".into())
                })?;
                Member::connect(endpoint, &self.opts).await
            })
            .await?;
        Ok(m.clone())
    }

    /// Runs `op` on the member that answered last, then on each other one
    /// in turn while the error is `Unavailable`. When a member answered
    /// that the cluster is busy (electing a leader), it goes round again
    /// after a pause, for up to [`CALL_TIMEOUT`]; when none could be
    /// reached it gives up at once. `op` must be safe to run again on
    /// another member after it failed (a read, or a first step that writes
    /// nothing). Returns the member that answered and the result.
    pub(super) async fn on_any_member<T, F, Fut>(&self, mut op: F) -> Result<(usize, T), StoreError>
    where
        F: FnMut(Member) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let n = self.clients.len();
        let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
        let mut pause = Duration::from_millis(50);
        loop {
            let first = self.preferred.load(Ordering::Relaxed) % n;
            let mut last_error = None;
            let mut busy = false;
            for step in 0..n {
                let i = (first + step) % n;
                let result = match self.member_at(i).await {
                    Ok(member) => op(member).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(v) => {
                        self.preferred.store(i, Ordering::Relaxed);
                        return Ok((i, v));
                    }
                    Err(e @ StoreError::Unavailable(_)) => {
                        tracing::debug!(endpoint = %self.opts.endpoints.get(i).map_or("", String::as_str), error = %e, "etcd member unavailable; trying the next one");
                        busy |= cluster_busy(&e);
                        last_error = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            let e =
                last_error.unwrap_or_else(|| StoreError::Unavailable("etcd: no endpoint".into()));
            if !busy || tokio::time::Instant::now() + pause > deadline {
                return Err(e);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Moves the preference away from member `i` after its stream broke.
    pub(super) fn avoid(&self, i: usize) {
        let n = self.clients.len();
        let _ =
            self.preferred
                .compare_exchange(i, (i + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A member that answers, proven by `read`, and what it read.
    pub(super) async fn kv_read<T, F, Fut>(&self, mut read: F) -> Result<(Member, T), StoreError>
    where
        F: FnMut(Member) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let (_, r) = self
            .on_any_member(|m| {
                let fut = read(m.clone());
                async move { Ok((m, fut.await?)) }
            })
            .await?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_means_an_election() {
        let e = |m: &str| StoreError::Unavailable(m.to_owned());
        assert!(cluster_busy(&e("etcd get: etcdserver: leader changed")));
        assert!(!cluster_busy(&e("etcd get: tcp connect error")));
        assert!(!cluster_busy(&StoreError::BadUrl(
            "etcdserver: no leader".into()
        )));
    }
}
