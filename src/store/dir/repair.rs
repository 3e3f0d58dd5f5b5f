//! Repair after a killed writer, and the consistent views readers and
//! watchers take (see the parent module's **Repair** and **Reading**).
//!
//! Repair must never rewrite the log below the head, and a reader must
//! never see half a batch.

use super::Inner;
use crate::store::StoreError;
use crate::store::fsutil::{self, StoreLock};
use crate::store::log::{self, Head};

impl Inner {
    /// Brings the object files and the head up to the log; see the module
    /// documentation. The caller holds the exclusive lock.
    pub(super) fn repair(&self) -> Result<Head, StoreError> {
        let head = match log::read_head(&self.head) {
            Ok(head) => head,
            Err(e @ StoreError::Corrupt { .. }) => {
                tracing::warn!(error = %e, "replaying the whole store log");
                Head::default()
            }
            Err(e) => return Err(e),
        };
        let len = log::log_len(&self.log)?;
        if len == head.log_offset {
            return Ok(head);
        }
        if len < head.log_offset {
            return Err(StoreError::corrupt(
                &self.log,
                format!(
                    "{len} bytes long but the head says {} are applied",
                    head.log_offset
                ),
            ));
        }
        let tail = log::read_tail(&self.log, head.log_offset)?;
        let mut revision = head.revision;
        for tx in &tail.changes {
            for record in &tx.events {
                if record.revision != revision + 1 {
                    return Err(StoreError::corrupt(
                        &self.log,
                        format!("revision {} follows revision {revision}", record.revision),
                    ));
                }
                revision = record.revision;
            }
            self.apply_records(&tx.events, true)?;
        }
        if tail.end < len {
            log::truncate(&self.log, tail.end)?;
        }
        let repaired = Head {
            revision,
            log_offset: tail.end,
        };
        log::write_head(&self.head, repaired)?;
        fsutil::remove_stale_temp(&self.root)?;
        tracing::info!(
            path = %self.root.display(),
            replayed = tail.changes.len(),
            torn_bytes = len - tail.end,
            revision,
            "repaired the store after an interrupted write"
        );
        Ok(repaired)
    }

    /// A lock under which the object files match the head, and that head.
    pub(super) fn read_view(&self) -> Result<(StoreLock, Head), StoreError> {
        let lock = StoreLock::shared(&self.lock)?;
        if let Ok(head) = log::read_head(&self.head)
            && log::log_len(&self.log)? == head.log_offset
        {
            return Ok((lock, head));
        }
        drop(lock);
        let lock = StoreLock::exclusive(&self.lock)?;
        let head = self.repair()?;
        Ok((lock, head))
    }

    /// For a watcher: the head, after a repair if a writer died; `None`
    /// while a writer holds the lock.
    pub(super) fn head_if_idle(&self) -> Result<Option<Head>, StoreError> {
        let Some(lock) = StoreLock::try_shared(&self.lock)? else {
            return Ok(None);
        };
        if let Ok(head) = log::read_head(&self.head)
            && log::log_len(&self.log)? == head.log_offset
        {
            return Ok(Some(head));
        }
        drop(lock);
        let _lock = StoreLock::exclusive(&self.lock)?;
        self.repair().map(Some)
    }
}
