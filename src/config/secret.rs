//! Core `v1` `Secret`, as `kubectl create secret` writes it.
//!
//! Values are kept as bytes in a type whose `Debug` never shows them: a
//! Secret usually holds a private key.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

use super::meta::ObjectMeta;

/// Secret bytes: base64 in YAML, raw in memory, `<redacted>` in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(pub Vec<u8>);

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        STANDARD
            .decode(compact.as_bytes())
            .map(SecretBytes)
            .map_err(|e| serde::de::Error::custom(base64_error(&e)))
    }
}

/// A base64 error in words; offsets count the value without its whitespace.
fn base64_error(e: &base64::DecodeError) -> String {
    use base64::DecodeError as E;
    let byte = |b: u8| {
        if b.is_ascii_graphic() {
            format!("{:?}", b as char)
        } else {
            format!("byte 0x{b:02x}")
        }
    };
    match e {
        E::InvalidByte(at, b) => format!(
            "invalid base64: {} at offset {at} is not a base64 character",
            byte(*b)
        ),
        E::InvalidLength(len) => {
            format!("invalid base64: {len} characters is not a valid length (cut short?)")
        }
        E::InvalidLastSymbol(at, b) => {
            format!(
                "invalid base64: {} at offset {at} ends the value wrongly",
                byte(*b)
            )
        }
        E::InvalidPadding => "invalid base64: wrong '=' padding".into(),
    }
}

/// A string value from `stringData`, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, SecretBytes>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

/// Secret types gatehouse stores.
pub const SECRET_TYPES: &[&str] = &["Opaque", "generic", "kubernetes.io/tls"];

impl Secret {
    /// Folds `stringData` into `data`, as the Kubernetes API server does on write.
    pub fn normalize(&mut self) {
        for (k, v) in std::mem::take(&mut self.string_data) {
            self.data.insert(k, SecretBytes(v.0.clone().into_bytes()));
        }
    }

    /// The value under `key`, from `data` or `stringData`.
    pub fn value(&self, key: &str) -> Option<&[u8]> {
        self.data
            .get(key)
            .map(|v| v.0.as_slice())
            .or_else(|| self.string_data.get(key).map(|v| v.0.as_bytes()))
    }

    /// Whether this secret carries a certificate/key pair or a CA: the
    /// content checks at apply time only look at such secrets.
    pub fn looks_like_credential(&self) -> bool {
        ["cert", "key", "tls.crt", "tls.key", "cacert", "ca.crt"]
            .iter()
            .any(|k| self.value(k).is_some())
    }

    /// A fresh Secret as `kubectl create secret` would make it.
    pub fn new(name: &str, namespace: &str, secret_type: &str) -> Secret {
        Secret {
            api_version: "v1".into(),
            kind: "Secret".into(),
            metadata: ObjectMeta {
                name: name.into(),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            secret_type: Some(secret_type.into()),
            data: BTreeMap::new(),
            string_data: BTreeMap::new(),
            immutable: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_values() {
        let mut s = Secret::new("x", "ns", "Opaque");
        s.data
            .insert("key".into(), SecretBytes(b"PRIVATE".to_vec()));
        s.string_data
            .insert("k2".into(), SecretString("SECRET2".into()));
        let d = format!("{s:?}");
        assert!(!d.contains("PRIVATE") && !d.contains("SECRET2"), "{d}");
    }
}
