//! The change log and the head: the directory store's source of truth.
//!
//! `log.jsonl` holds one JSON line per committed change (one `apply` or
//! `delete` batch): `{"events":[{"revision":7,"type":"Added","kind":...,
//! "namespace":...,"name":...,"value":...}, ...]}`. A line counts only once
//! its final `\n` is on disk, so a writer killed mid-append leaves a torn tail
//! that is not a change. `head.json` says how much of the log is applied to
//! the object files: `{"revision":R,"log_offset":N}` means bytes `[0, N)` of
//! the log hold revisions `1..=R` and every object file reflects them.
//!
//! This module must never rewrite a byte of the log below the head's offset:
//! watchers read that part without a lock.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::{EventType, ObjectKey, StoreError, fsutil};

/// An object's value as stored: a JSON string when it is UTF-8 (the normal
/// case: values are JSON), base64 otherwise, so that bytes round-trip.
#[derive(Serialize, Deserialize, Default, Clone)]
pub(crate) struct StoredValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

impl StoredValue {
    pub(crate) fn encode(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self {
                value: Some(text.to_owned()),
                value_base64: None,
            },
            Err(_) => Self {
                value: None,
                value_base64: Some(BASE64.encode(bytes)),
            },
        }
    }

    pub(crate) fn decode(self) -> Result<Vec<u8>, String> {
        match (self.value, self.value_base64) {
            (Some(text), None) => Ok(text.into_bytes()),
            (None, Some(b64)) => BASE64
                .decode(b64)
                .map_err(|e| format!("bad value_base64: {e}")),
            _ => Err("exactly one of value and value_base64 must be present".to_owned()),
        }
    }
}

/// One event of a committed change.
#[derive(Serialize, Deserialize)]
pub(crate) struct Record {
    pub revision: u64,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(flatten)]
    pub value: StoredValue,
}

impl Record {
    pub(crate) fn new(revision: u64, event_type: EventType, key: &ObjectKey, value: &[u8]) -> Self {
        Self {
            revision,
            event_type,
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            value: StoredValue::encode(value),
        }
    }

    pub(crate) fn key(&self) -> ObjectKey {
        ObjectKey::new(&self.kind, &self.namespace, &self.name)
    }
}

/// One committed change: one line of the log.
#[derive(Serialize, Deserialize)]
pub(crate) struct Transaction {
    pub events: Vec<Record>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Head {
    pub revision: u64,
    pub log_offset: u64,
}

/// The head; a store that never committed anything has none, which reads as
/// revision 0 at offset 0.
pub(crate) fn read_head(path: &Path) -> Result<Head, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| StoreError::corrupt(path, e.to_string()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Head::default()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Replaces the head atomically and durably. The caller holds the exclusive
/// lock.
pub(crate) fn write_head(path: &Path, head: Head) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(&head).map_err(|e| StoreError::corrupt(path, e.to_string()))?;
    fsutil::write_atomic(path, &bytes)?;
    match path.parent() {
        Some(dir) => fsutil::fsync_dir(dir),
        None => Ok(()),
    }
}

/// The log's length in bytes; a missing log is empty.
pub(crate) fn log_len(path: &Path) -> Result<u64, StoreError> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Appends `tx` as one line and makes it durable: this is a change's commit
/// point. Returns the log's new length. The caller holds the exclusive lock
/// and has truncated any torn tail (see [`read_tail`]).
pub(crate) fn append(path: &Path, tx: &Transaction) -> Result<u64, StoreError> {
    let mut line = serde_json::to_vec(tx).map_err(|e| StoreError::corrupt(path, e.to_string()))?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    // One write of the whole line: the final '\n' lands last.
    file.write_all(&line)
        .and_then(|()| file.sync_data())
        .and_then(|()| file.metadata())
        .map(|meta| meta.len())
        .map_err(|e| StoreError::io(path, e))
}

/// Cuts a torn tail off the log. The caller holds the exclusive lock.
pub(crate) fn truncate(path: &Path, len: u64) -> Result<(), StoreError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|file| file.set_len(len).and_then(|()| file.sync_all()))
        .map_err(|e| StoreError::io(path, e))
}

fn open_at(path: &Path, offset: u64) -> Result<File, StoreError> {
    let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| StoreError::io(path, e))?;
    Ok(file)
}

fn parse_line(path: &Path, offset: u64, line: &[u8]) -> Result<Transaction, StoreError> {
    serde_json::from_slice(line)
        .map_err(|e| StoreError::corrupt(path, format!("change at byte {offset}: {e}")))
}

/// Calls `each` with every change in `[from, to)` of the log, which must be
/// whole lines (the part below a head's offset is). Stops early when `each`
/// returns `false`.
pub(crate) fn for_each(
    path: &Path,
    from: u64,
    to: u64,
    mut each: impl FnMut(Transaction) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let file = open_at(path, from)?;
    let mut reader = BufReader::new(file.take(to.saturating_sub(from)));
    let mut line = Vec::new();
    let mut offset = from;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| StoreError::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            return Err(StoreError::corrupt(
                path,
                format!("change at byte {offset} is cut short below the head"),
            ));
        }
        let tx = parse_line(path, offset, &line)?;
        offset += n as u64;
        if !each(tx)? {
            return Ok(());
        }
    }
}

/// What lies past the head: changes committed but perhaps not applied, and
/// where the last whole one ends.
pub(crate) struct Tail {
    pub changes: Vec<Transaction>,
    pub end: u64,
}

/// Reads the log from `from` to its end. Whole lines are committed changes;
/// bytes after the last `\n` are a torn tail left by a killed writer. A whole
/// last line that does not parse (only a power loss can leave one) counts as
/// torn too; an unparseable line followed by others is corruption.
pub(crate) fn read_tail(path: &Path, from: u64) -> Result<Tail, StoreError> {
    let mut bytes = Vec::new();
    open_at(path, from)?
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io(path, e))?;
    let mut changes = Vec::new();
    let mut offset = from;
    let mut rest = bytes.as_slice();
    while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
        let (line, after) = rest.split_at(newline + 1);
        match parse_line(path, offset, line) {
            Ok(tx) => changes.push(tx),
            Err(e) if after.contains(&b'\n') => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "dropping an unreadable last change from the store log");
                break;
            }
        }
        offset += line.len() as u64;
        rest = after;
    }
    Ok(Tail {
        changes,
        end: offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for bytes in [&b"{\"a\":1}"[..], b"", b"\xff\x00binary"] {
            let stored = StoredValue::encode(bytes);
            let json = serde_json::to_vec(&stored).unwrap_or_default();
            let back: StoredValue = serde_json::from_slice(&json).unwrap_or_default();
            assert_eq!(back.decode().as_deref(), Ok(bytes));
        }
    }
}
