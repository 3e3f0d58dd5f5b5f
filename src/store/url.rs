//! Store URLs: which backend a `--store` value names (`dir:PATH`, a bare
//! path, `etcd://HOST:PORT,...`, `kube`, `kube:in-cluster`), where the default directory store lives,
//! and opening the store a URL names.
//!
//! Parsing must never touch the disk or the network; only `open` does.

use std::ffi::OsString;
use std::path::PathBuf;

use super::kube::{KubeOptions, KubeSource, KubeStore};
use super::{AnyStore, DirStore, EtcdOptions, EtcdStore, StoreError};

const SUPPORTED: &str = "supported: \"dir:<path>\", \"dir:\" (the default location), a bare path, \"etcd://HOST:PORT[,HOST:PORT...]\", \"kube\" (KUBECONFIG or ~/.kube/config) or \"kube:in-cluster\"";

/// Where a store URL points, before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory store; `None` means [`default_location`].
    Dir(Option<PathBuf>),
    /// An etcd cluster: `http://` or `https://` endpoints.
    Etcd(Vec<String>),
    /// A Kubernetes API server.
    Kube(KubeSource),
}

/// Parses a store URL: `dir:/some/path`, `dir:` (the default location), or a
/// bare path. Any other scheme is [`StoreError::BadUrl`].
pub fn parse_url(url: &str) -> Result<Location, StoreError> {
    if url.is_empty() {
        return Err(StoreError::BadUrl(format!("empty store URL ({SUPPORTED})")));
    }
    match url {
        "kube" | "kube:" | "kubernetes" => return Ok(Location::Kube(KubeSource::Kubeconfig)),
        "kube:in-cluster" => return Ok(Location::Kube(KubeSource::InCluster)),
        _ => {}
    }
    if let Some(rest) = url.strip_prefix("dir:") {
        // Accept the URL form `dir:///abs/path` (empty authority) as well.
        let path = match rest.strip_prefix("//") {
            Some(after) if after.starts_with('/') => after,
            Some(_) => {
                return Err(StoreError::BadUrl(format!(
                    "store URL {url:?} names a host; a dir store is local ({SUPPORTED})"
                )));
            }
            None => rest,
        };
        return Ok(Location::Dir(
            (!path.is_empty()).then(|| PathBuf::from(path)),
        ));
    }
    for (scheme, tls) in [("etcd://", false), ("etcds://", true)] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let endpoints: Vec<String> = rest
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(|e| format!("{}://{e}", if tls { "https" } else { "http" }))
                .collect();
            if endpoints.is_empty() {
                return Err(StoreError::BadUrl(format!(
                    "store URL {url:?} names no etcd endpoint ({SUPPORTED})"
                )));
            }
            return Ok(Location::Etcd(endpoints));
        }
    }
    if let Some((scheme, _)) = url.split_once(':') {
        let looks_like_scheme = scheme.len() > 1
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if looks_like_scheme {
            return Err(StoreError::BadUrl(format!(
                "unsupported store scheme {scheme:?} in {url:?} ({SUPPORTED})"
            )));
        }
    }
    Ok(Location::Dir(Some(PathBuf::from(url))))
}

/// Opens the store `url` names (see [`parse_url`]), creating a directory
/// store (mode 0700) if it is missing.
pub fn open(url: &str) -> Result<AnyStore, StoreError> {
    open_with(url, EtcdOptions::default())
}

/// Opens a store; `etcd` carries the options an etcd URL needs (TLS, user,
/// prefix, encryption keys). Its `endpoints` are taken from the URL.
pub fn open_with(url: &str, etcd: EtcdOptions) -> Result<AnyStore, StoreError> {
    open_any(url, etcd, KubeOptions::default())
}

/// Opens a store with the options of every backend; `kube` says which
/// namespaces a running gateway reads (its `source` comes from the URL).
pub fn open_any(url: &str, etcd: EtcdOptions, kube: KubeOptions) -> Result<AnyStore, StoreError> {
    match parse_url(url)? {
        Location::Kube(source) => Ok(AnyStore::Kube(KubeStore::new(KubeOptions {
            source,
            ..kube
        }))),
        Location::Dir(path) => {
            let path = match path {
                Some(path) => path,
                None => default_location()?,
            };
            Ok(AnyStore::Dir(DirStore::open(path)?))
        }
        Location::Etcd(mut endpoints) => {
            if etcd.ca_pem.is_some() {
                for e in &mut endpoints {
                    if let Some(rest) = e.strip_prefix("http://") {
                        *e = format!("https://{rest}");
                    }
                }
            }
            let prefix = if etcd.prefix.is_empty() {
                "/gatehouse/".to_owned()
            } else {
                etcd.prefix.clone()
            };
            Ok(AnyStore::Etcd(EtcdStore::new(EtcdOptions {
                endpoints,
                prefix,
                ..etcd
            })))
        }
    }
}

/// `$XDG_DATA_HOME/gatehouse`, else `$HOME/.local/share/gatehouse`.
pub fn default_location() -> Result<PathBuf, StoreError> {
    location_from_env(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
}

/// [`default_location`] from explicit values of `XDG_DATA_HOME` and `HOME`.
/// As the XDG spec says, an empty or relative `XDG_DATA_HOME` is ignored.
pub fn location_from_env(
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, StoreError> {
    if let Some(xdg) = xdg_data_home.map(PathBuf::from)
        && xdg.is_absolute()
    {
        return Ok(xdg.join("gatehouse"));
    }
    match home {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(".local/share/gatehouse")),
        _ => Err(StoreError::NoDefaultLocation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let dir = |p: Option<&str>| Some(Location::Dir(p.map(PathBuf::from)));
        for (url, want) in [
            ("dir:/var/lib/g", dir(Some("/var/lib/g"))),
            ("dir:", dir(None)),
            ("dir:///var/lib/g", dir(Some("/var/lib/g"))),
            ("dir:rel/path", dir(Some("rel/path"))),
            ("/abs/path", dir(Some("/abs/path"))),
            ("rel/path", dir(Some("rel/path"))),
            ("./x:y", dir(Some("./x:y"))),
        ] {
            assert_eq!(parse_url(url).ok(), want, "{url}");
        }
        assert_eq!(
            parse_url("etcd://127.0.0.1:2379,127.0.0.1:2381").ok(),
            Some(Location::Etcd(vec![
                "http://127.0.0.1:2379".into(),
                "http://127.0.0.1:2381".into()
            ]))
        );
        assert_eq!(
            parse_url("kube").ok(),
            Some(Location::Kube(KubeSource::Kubeconfig))
        );
        assert_eq!(
            parse_url("kube:in-cluster").ok(),
            Some(Location::Kube(KubeSource::InCluster))
        );
        for url in [
            "",
            "etcd://",
            "dir://host/x",
            "https://k8s",
            "kubernetes:",
            "kube:elsewhere",
        ] {
            let err = parse_url(url)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("dir:"), "{url}: {err}");
            assert!(!err.contains('\n'), "{url}: {err}");
        }
    }

    #[test]
    fn default_location_prefers_absolute_xdg() {
        let s = |v: &str| Some(OsString::from(v));
        let loc = |x, h| location_from_env(x, h).ok();
        assert_eq!(loc(s("/x"), s("/h")), Some(PathBuf::from("/x/gatehouse")));
        assert_eq!(
            loc(None, s("/h")),
            Some(PathBuf::from("/h/.local/share/gatehouse"))
        );
        assert_eq!(
            loc(s(""), s("/h")),
            Some(PathBuf::from("/h/.local/share/gatehouse"))
        );
        assert_eq!(
            loc(s("rel"), s("/h")),
            Some(PathBuf::from("/h/.local/share/gatehouse"))
        );
        assert!(matches!(
            location_from_env(None, None),
            Err(StoreError::NoDefaultLocation)
        ));
    }
}
