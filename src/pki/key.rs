//! The kind of key pair behind every certificate this module makes.

use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize};

use super::error::PkiError;

/// The kind of key pair generated for every certificate of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    /// ECDSA on P-256, signing with SHA-256.
    #[default]
    EcdsaP256,
    /// 2048-bit RSA, signing with PKCS#1 v1.5 and SHA-256.
    Rsa2048,
}

impl KeyType {
    /// Every key type, in the order `--help` should list them.
    pub const ALL: [KeyType; 2] = [KeyType::EcdsaP256, KeyType::Rsa2048];

    /// The name accepted by [`FromStr`] and printed by [`Display`](fmt::Display).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Rsa2048 => "rsa-2048",
        }
    }

    pub(crate) fn generate(self) -> Result<KeyPair, PkiError> {
        let generated = match self {
            KeyType::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            KeyType::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
        };
        generated.map_err(|source| PkiError::Generate {
            what: format!("{self} key"),
            source,
        })
    }

    /// The key type of a loaded key, if it is one this module makes.
    pub(crate) fn of(key: &KeyPair) -> Option<KeyType> {
        let alg = key.algorithm();
        if alg == &PKCS_ECDSA_P256_SHA256 {
            Some(KeyType::EcdsaP256)
        } else if alg == &PKCS_RSA_SHA256 {
            Some(KeyType::Rsa2048)
        } else {
            None
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| PkiError::UnknownKeyType {
                given: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_names_round_trip() {
        for k in KeyType::ALL {
            assert_eq!(k.as_str().parse::<KeyType>().ok(), Some(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert_eq!("RSA-2048".parse::<KeyType>().ok(), Some(KeyType::Rsa2048));
        assert_eq!(KeyType::default(), KeyType::EcdsaP256);
    }

    #[test]
    fn unknown_key_type_names_the_choices() {
        let err = "ed25519".parse::<KeyType>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown key type \"ed25519\"; expected ecdsa-p256 or rsa-2048")
        );
    }
}
