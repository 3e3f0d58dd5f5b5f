//! Writing a batch: check every precondition under the exclusive lock,
//! append the batch to the log (the commit point), then the object files,
//! then the head (see the parent module's **Writing**).
//!
//! A write must never touch an object file before its change is in the log.

use std::collections::HashSet;

use super::Inner;
use crate::store::fsutil::StoreLock;
use crate::store::log::{self, Head, Record, Transaction};
use crate::store::{EventType, ObjectKey, Outcome, Put, StoreError};

impl Inner {
    /// Commits `records` (consecutive revisions after `head`) and applies
    /// them. The caller holds the exclusive lock and has repaired.
    fn commit(&self, head: Head, records: Vec<Record>) -> Result<(), StoreError> {
        let Some(last) = records.last().map(|r| r.revision) else {
            return Ok(());
        };
        let tx = Transaction { events: records };
        let log_offset = log::append(&self.log, &tx)?;
        self.apply_records(&tx.events, false)?;
        log::write_head(
            &self.head,
            Head {
                revision: last,
                log_offset,
            },
        )?;
        tracing::debug!(
            from = head.revision + 1,
            to = last,
            "store committed a change"
        );
        Ok(())
    }
    pub(super) fn apply(
        &self,
        puts: Vec<Put>,
    ) -> Result<Vec<(ObjectKey, Outcome, u64)>, StoreError> {
        let mut seen = HashSet::new();
        let mut paths = Vec::with_capacity(puts.len());
        for put in &puts {
            paths.push(self.object_path(&put.key)?);
            if !seen.insert(&put.key) {
                return Err(StoreError::DuplicateKey {
                    key: put.key.clone(),
                });
            }
        }
        let _lock = StoreLock::exclusive(&self.lock)?;
        let head = self.repair()?;
        let mut revision = head.revision;
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(puts.len());
        for (put, path) in puts.iter().zip(&paths) {
            let current = self.read_object(path)?;
            let actual = current.as_ref().map_or(0, |c| c.resource_version);
            if let Some(expected) = put.expected_version
                && expected != actual
            {
                return Err(StoreError::Conflict {
                    key: put.key.clone(),
                    expected,
                    actual,
                });
            }
            let (outcome, event_type) = match current {
                Some(current) if current.value == put.value => {
                    results.push((put.key.clone(), Outcome::Unchanged, actual));
                    continue;
                }
                Some(_) => (Outcome::Configured, EventType::Modified),
                None => (Outcome::Created, EventType::Added),
            };
            revision += 1;
            records.push(Record::new(revision, event_type, &put.key, &put.value));
            results.push((put.key.clone(), outcome, revision));
        }
        self.commit(head, records)?;
        Ok(results)
    }

    pub(super) fn delete(&self, keys: Vec<ObjectKey>) -> Result<Vec<bool>, StoreError> {
        let paths = keys
            .iter()
            .map(|key| self.object_path(key))
            .collect::<Result<Vec<_>, _>>()?;
        let _lock = StoreLock::exclusive(&self.lock)?;
        let head = self.repair()?;
        let mut revision = head.revision;
        let mut records = Vec::new();
        let mut deleted = HashSet::new();
        let mut results = Vec::with_capacity(keys.len());
        for (key, path) in keys.iter().zip(&paths) {
            let current = if deleted.insert(key) {
                self.read_object(path)?
            } else {
                None
            };
            if let Some(current) = &current {
                revision += 1;
                records.push(Record::new(
                    revision,
                    EventType::Deleted,
                    key,
                    &current.value,
                ));
            }
            results.push(current.is_some());
        }
        self.commit(head, records)?;
        Ok(results)
    }
}
