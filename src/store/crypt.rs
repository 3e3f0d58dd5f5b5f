//! Encryption at rest for Secrets in a shared store (etcd): AES-256-GCM with
//! a key id stored beside each value, so keys can be rotated.
//!
//! Key file: one key per line, `ID:BASE64(32 bytes)`; the first line is the
//! key new values are written with, later lines still decrypt older values.
//! Keys never reach a log, an error message or a `Debug` string.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::StoreError;

/// Prefix of every encrypted value.
const MAGIC: &[u8] = b"gatehouse:enc:aes256gcm:v1:";

/// One named key.
struct Key {
    id: String,
    key: LessSafeKey,
}

/// The keys of one installation: the first encrypts, all decrypt.
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring")
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

fn bad_file(path: &Path, line: usize, why: &str) -> StoreError {
    StoreError::BadUrl(format!(
        "encryption key file {}: line {line}: {why} (make one with `gatehouse keygen --out FILE`)",
        path.display()
    ))
}

impl Keyring {
    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Keyring, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|e| StoreError::io(path, e))?;
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, b64) = line
                .split_once(':')
                .ok_or_else(|| bad_file(path, i + 1, "expected ID:BASE64KEY"))?;
            let ok_id = !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok_id {
                return Err(bad_file(
                    path,
                    i + 1,
                    "key id must be letters, digits, '-', '_' or '.'",
                ));
            }
            let raw = STANDARD
                .decode(b64.trim())
                .map_err(|_| bad_file(path, i + 1, "the key is not base64"))?;
            let unbound = UnboundKey::new(&AES_256_GCM, &raw)
                .map_err(|_| bad_file(path, i + 1, "the key must be 32 bytes"))?;
            keys.push(Key {
                id: id.to_owned(),
                key: LessSafeKey::new(unbound),
            });
        }
        if keys.is_empty() {
            return Err(bad_file(path, 1, "no key in the file"));
        }
        Ok(Keyring { keys })
    }

    /// Encrypts `plain`, bound to `context` (the storage key) so a value
    /// cannot be moved to another object.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let k = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| StoreError::Background("no randomness for a nonce".into()))?;
        let mut buf = plain.to_vec();
        k.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut buf,
            )
            .map_err(|_| StoreError::Background("encryption failed".into()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + k.id.len() + 1 + NONCE_LEN + buf.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(k.id.as_bytes());
        out.push(b':');
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts a value written by [`seal`](Self::seal) with any known key.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String> {
        let rest = sealed
            .strip_prefix(MAGIC)
            .ok_or("the value is not encrypted")?;
        let colon = rest
            .iter()
            .position(|b| *b == b':')
            .ok_or("malformed encrypted value")?;
        let id = std::str::from_utf8(&rest[..colon]).map_err(|_| "malformed key id")?;
        let body = &rest[colon + 1..];
        if body.len() < NONCE_LEN {
            return Err("malformed encrypted value".into());
        }
        let key =
            self.keys.iter().find(|k| k.id == id).ok_or_else(|| {
                format!("encrypted with key {id:?}, which is not in the key file")
            })?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&body[..NONCE_LEN]);
        let mut buf = body[NONCE_LEN..].to_vec();
        let plain = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut buf,
            )
            .map_err(|_| format!("cannot decrypt with key {id:?} (wrong key or tampered value)"))?;
        Ok(plain.to_vec())
    }

    /// Whether a stored value is encrypted.
    pub fn is_sealed(value: &[u8]) -> bool {
        value.starts_with(MAGIC)
    }
}

/// Writes a new key file (mode 0600, never overwriting) and returns its key id.
pub fn keygen(path: &Path) -> Result<String, StoreError> {
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw)
        .map_err(|_| StoreError::Background("no randomness for a key".into()))?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut tag = [0u8; 3];
    aws_lc_rs::rand::fill(&mut tag)
        .map_err(|_| StoreError::Background("no randomness for a key id".into()))?;
    let id = format!("k{secs}-{:02x}{:02x}{:02x}", tag[0], tag[1], tag[2]);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    let text = format!(
        "# gatehouse encryption key file: ID:BASE64KEY; the first key encrypts, all decrypt.\n# To rotate, put a new key line first and keep the old ones below it.\n{id}:{}\n",
        STANDARD.encode(raw)
    );
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| StoreError::io(path, e))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_rotate_and_bind_to_context() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old");
        keygen(&old).unwrap();
        let ring_old = Keyring::load(&old).unwrap();
        let sealed = ring_old
            .seal(b"/gatehouse/Secret/ns/a", b"PRIVATE")
            .unwrap();
        assert!(Keyring::is_sealed(&sealed));
        assert!(!sealed.windows(7).any(|w| w == b"PRIVATE"));
        assert_eq!(
            ring_old.open(b"/gatehouse/Secret/ns/a", &sealed).unwrap(),
            b"PRIVATE"
        );
        // Moved to another key: refused.
        assert!(ring_old.open(b"/gatehouse/Secret/ns/b", &sealed).is_err());
        // Rotation: a new first key, the old one below it, still decrypts.
        let new = dir.path().join("new");
        keygen(&new).unwrap();
        let text = std::fs::read_to_string(&new).unwrap() + &std::fs::read_to_string(&old).unwrap();
        let both = dir.path().join("both");
        std::fs::write(&both, text).unwrap();
        let ring = Keyring::load(&both).unwrap();
        assert_eq!(
            ring.open(b"/gatehouse/Secret/ns/a", &sealed).unwrap(),
            b"PRIVATE"
        );
        assert!(!format!("{ring:?}").contains(&STANDARD.encode([0u8; 4])));
        // keygen never overwrites, and writes 0600.
        assert!(keygen(&old).is_err());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&old).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
