//! The walkthrough's on-disk tree, `DIR/HOST/{1_root,2_intermediate,
//! 3_application,4_client}`, and the operations on it that `gatehouse pki`
//! exposes: `init`, `issue_client`, `revoke`, `write_crl`.
//!
//! It must never overwrite an existing tree or certificate unless asked to
//! (`force`), and never leave a private key readable by anyone but its owner.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::ca::{Ca, CaSpec};
use super::crl::{CrlSpec, INDEX_HEADER, Revoked, index_line, read_index};
use super::error::PkiError;
use super::files::{self, KEY_MODE, Overwrite, PUBLIC_MODE, shown};
use super::key::KeyType;
use super::leaf::LeafSpec;
use super::x509::{parse_chain, pem_encode};

/// Every path of one host's tree. [`HostLayout::new`] only computes paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayout {
    pub host: String,
    /// `DIR/HOST`
    pub dir: PathBuf,
    pub root_cert: PathBuf,
    pub root_key: PathBuf,
    pub intermediate_cert: PathBuf,
    pub intermediate_key: PathBuf,
    /// Intermediate then root, concatenated PEM: the walkthrough's `cacert`.
    pub ca_chain: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub crl: PathBuf,
    /// Revoked serials, one per line (see [`read_index`]).
    pub index: PathBuf,
}

impl HostLayout {
    pub fn new(out: impl AsRef<Path>, host: &str) -> Self {
        let dir = out.as_ref().join(host);
        let root = dir.join("1_root");
        let inter = dir.join("2_intermediate");
        let app = dir.join("3_application");
        let client = dir.join("4_client");
        HostLayout {
            host: host.to_string(),
            root_cert: root.join("certs/ca.cert.pem"),
            root_key: root.join("private/ca.key.pem"),
            intermediate_cert: inter.join("certs/intermediate.cert.pem"),
            intermediate_key: inter.join("private/intermediate.key.pem"),
            ca_chain: inter.join("certs/ca-chain.cert.pem"),
            server_cert: app.join(format!("certs/{host}.cert.pem")),
            server_key: app.join(format!("private/{host}.key.pem")),
            client_cert: client.join(format!("certs/{host}.cert.pem")),
            client_key: client.join(format!("private/{host}.key.pem")),
            crl: inter.join("crl/intermediate.crl.pem"),
            index: inter.join("index.txt"),
            dir,
        }
    }

    /// `4_client/certs/NAME.cert.pem`
    pub fn client_cert_named(&self, name: &str) -> PathBuf {
        self.dir
            .join("4_client/certs")
            .join(format!("{name}.cert.pem"))
    }

    /// `4_client/private/NAME.key.pem`
    pub fn client_key_named(&self, name: &str) -> PathBuf {
        self.dir
            .join("4_client/private")
            .join(format!("{name}.key.pem"))
    }

    /// The intermediate CA, loaded from disk with the root as its parent.
    pub fn load_intermediate(&self) -> Result<Ca, PkiError> {
        for path in [
            &self.intermediate_cert,
            &self.intermediate_key,
            &self.ca_chain,
        ] {
            if !path.exists() {
                return Err(PkiError::NotInitialized {
                    path: path.clone(),
                    host: self.host.clone(),
                });
            }
        }
        let cert = files::read_text(&self.intermediate_cert)?;
        let key = files::read_text(&self.intermediate_key)?;
        let chain = files::read_text(&self.ca_chain)?;
        // ca-chain is the intermediate then its parents; keep the parents.
        let parents: String = parse_chain(&chain, &shown(&self.ca_chain))?
            .iter()
            .skip(1)
            .map(|der| pem_encode("CERTIFICATE", der))
            .collect();
        Ca::load(
            &cert,
            &shown(&self.intermediate_cert),
            &key,
            &shown(&self.intermediate_key),
            &parents,
            &shown(&self.ca_chain),
        )
    }
}

/// What `gatehouse pki init` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    pub host: String,
    pub out: PathBuf,
    pub key_type: KeyType,
    /// Validity of the leaves; the CAs last at least this long.
    pub days: u32,
    pub force: bool,
}

/// Makes the whole tree for `opts.host` under `opts.out`: root, intermediate,
/// chain, server and client leaves, an empty revocation index and an empty
/// CRL. Refuses an existing `DIR/HOST` unless `force`.
pub fn init(opts: &InitOptions) -> Result<HostLayout, PkiError> {
    validate_host(&opts.host)?;
    if opts.days == 0 {
        return Err(PkiError::InvalidDays { days: opts.days });
    }
    let layout = HostLayout::new(&opts.out, &opts.host);
    files::refuse_existing(&layout.dir, opts.force)?;

    let host = opts.host.as_str();
    let root_spec = CaSpec::root(format!("{host} Root CA"))
        .key_type(opts.key_type)
        .valid_days(opts.days.max(super::DEFAULT_ROOT_DAYS));
    let root = Ca::root_from_spec(&root_spec)?;
    let inter_spec = CaSpec::intermediate(format!("{host} Intermediate CA"))
        .key_type(opts.key_type)
        .valid_days(opts.days.max(super::DEFAULT_INTERMEDIATE_DAYS));
    let intermediate = root.intermediate_from_spec(&inter_spec)?;
    let server = intermediate.issue(
        &LeafSpec::server(host)
            .key_type(opts.key_type)
            .valid_days(opts.days),
    )?;
    let client = intermediate.issue(
        &LeafSpec::client(host)
            .key_type(opts.key_type)
            .valid_days(opts.days),
    )?;

    files::create_dir(&layout.dir)?;
    // Directories first: every private/ is 0700 before a key goes into it.
    for key in [
        &layout.root_key,
        &layout.intermediate_key,
        &layout.server_key,
        &layout.client_key,
    ] {
        files::create_private_dir(parent(key)?)?;
    }
    for path in [
        &layout.root_cert,
        &layout.intermediate_cert,
        &layout.server_cert,
        &layout.client_cert,
        &layout.crl,
    ] {
        files::create_dir(parent(path)?)?;
    }

    // With force the tree is replaced file by file; without it, any file
    // that appeared since the check above is an error, never clobbered.
    let mode = files::overwrite(opts.force);
    let public =
        |path: &Path, text: &str| files::write_file(path, text.as_bytes(), PUBLIC_MODE, mode);
    let private =
        |path: &Path, text: &str| files::write_file(path, text.as_bytes(), KEY_MODE, mode);
    private(&layout.root_key, &root.key_pem())?;
    public(&layout.root_cert, root.cert_pem())?;
    private(&layout.intermediate_key, &intermediate.key_pem())?;
    public(&layout.intermediate_cert, intermediate.cert_pem())?;
    public(&layout.ca_chain, &intermediate.chain_pem())?;
    private(&layout.server_key, &server.key_pem)?;
    public(&layout.server_cert, &server.cert_pem)?;
    private(&layout.client_key, &client.key_pem)?;
    public(&layout.client_cert, &client.cert_pem)?;
    public(&layout.index, INDEX_HEADER)?;
    public(&layout.crl, &intermediate.crl(&[])?)?;
    Ok(layout)
}

/// Issues another client certificate (CN = `name`) from `host`'s
/// intermediate, to `4_client/certs/NAME.cert.pem` and
/// `4_client/private/NAME.key.pem`. Returns `(cert, key)` paths.
pub fn issue_client(
    out: &Path,
    host: &str,
    name: &str,
    days: u32,
    force: bool,
) -> Result<(PathBuf, PathBuf), PkiError> {
    validate_host(host)?;
    validate_name(name)?;
    if days == 0 {
        return Err(PkiError::InvalidDays { days });
    }
    let layout = HostLayout::new(out, host);
    let cert_path = layout.client_cert_named(name);
    let key_path = layout.client_key_named(name);
    files::refuse_existing(&cert_path, force)?;
    files::refuse_existing(&key_path, force)?;

    let intermediate = layout.load_intermediate()?;
    let issued = intermediate.issue(
        &LeafSpec::client(name)
            .key_type(intermediate.key_type())
            .valid_days(days),
    )?;
    files::create_private_dir(parent(&key_path)?)?;
    files::create_dir(parent(&cert_path)?)?;
    issued.write_files(&cert_path, &key_path, force)?;
    Ok((cert_path, key_path))
}

/// Revokes `cert` (which must have been issued by `host`'s intermediate):
/// records its serial in the index and rewrites the CRL with every revoked
/// serial. Revoking twice is not an error. Returns the CRL path.
pub fn revoke(out: &Path, host: &str, cert: &Path) -> Result<PathBuf, PkiError> {
    validate_host(host)?;
    let layout = HostLayout::new(out, host);
    let intermediate = layout.load_intermediate()?;
    let pem = files::read_text(cert)?;
    let origin = shown(cert);
    let der = parse_chain(&pem, &origin)?
        .into_iter()
        .next()
        .ok_or_else(|| PkiError::Certificate {
            origin: origin.clone(),
            reason: "no CERTIFICATE block".to_string(),
        })?;
    let serial = intermediate.issued_serial(&der, &origin)?;

    let mut revoked = read_index(&layout.index)?;
    if !revoked.iter().any(|r| r.serial_hex == serial) {
        let now = OffsetDateTime::now_utc();
        let existing = match files::read_text(&layout.index) {
            Ok(text) => text,
            Err(_) if !layout.index.exists() => INDEX_HEADER.to_string(),
            Err(e) => return Err(e),
        };
        let mut text = existing;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&index_line(&serial, now, &origin));
        files::write_file(
            &layout.index,
            text.as_bytes(),
            PUBLIC_MODE,
            Overwrite::Replace,
        )?;
        revoked.push(Revoked {
            serial_hex: serial,
            revoked_at: now,
        });
    }
    write_crl_for(&layout, &intermediate, revoked)
}

/// Writes `host`'s CRL from its revocation index (an empty CRL when nothing
/// is revoked), replacing the previous one. Returns the CRL path.
pub fn write_crl(out: &Path, host: &str) -> Result<PathBuf, PkiError> {
    validate_host(host)?;
    let layout = HostLayout::new(out, host);
    let intermediate = layout.load_intermediate()?;
    let revoked = read_index(&layout.index)?;
    write_crl_for(&layout, &intermediate, revoked)
}

fn write_crl_for(
    layout: &HostLayout,
    intermediate: &Ca,
    revoked: Vec<Revoked>,
) -> Result<PathBuf, PkiError> {
    let spec = CrlSpec {
        revoked,
        ..CrlSpec::new::<&str>(&[])
    };
    let pem = intermediate.crl_with(&spec)?;
    files::create_dir(parent(&layout.crl)?)?;
    files::write_file(&layout.crl, pem.as_bytes(), PUBLIC_MODE, Overwrite::Replace)?;
    Ok(layout.crl.clone())
}

fn parent(path: &Path) -> Result<&Path, PkiError> {
    path.parent().ok_or_else(|| {
        files::io_error(
            "find the directory of",
            path,
            std::io::ErrorKind::InvalidInput.into(),
        )
    })
}

/// Checks that `host` is a DNS name (lowercase LDH labels, or a leading
/// `*.` wildcard label followed by at least two labels).
pub fn validate_host(host: &str) -> Result<(), PkiError> {
    let invalid = |reason: &str| PkiError::InvalidHost {
        host: host.to_string(),
        reason: reason.to_string(),
    };
    if host.is_empty() {
        return Err(invalid("empty"));
    }
    if host.len() > 253 {
        return Err(invalid("longer than 253 characters"));
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Err(invalid("an IP address, not a DNS name"));
    }
    if host.ends_with('.') {
        return Err(invalid("trailing dot"));
    }
    let labels: Vec<&str> = host.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if *label == "*" {
            if i != 0 {
                return Err(invalid("a wildcard may only be the first label"));
            }
            if labels.len() < 3 {
                return Err(invalid("a wildcard needs at least two labels after it"));
            }
            continue;
        }
        if label.is_empty() {
            return Err(invalid("empty label"));
        }
        if label.len() > 63 {
            return Err(invalid("label longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("label starts or ends with '-'"));
        }
        if label.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("uppercase letters; use lowercase"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid("only letters, digits, '-' and '.' are allowed"));
        }
    }
    Ok(())
}

/// A client name becomes a file name: letters, digits, `.`, `-`, `_`, `@`,
/// not starting with `.`.
fn validate_name(name: &str) -> Result<(), PkiError> {
    let invalid = |reason: &str| PkiError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > 200 {
        return Err(invalid("longer than 200 characters"));
    }
    if name.starts_with('.') {
        return Err(invalid("starts with '.'"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'))
    {
        return Err(invalid(
            "only letters, digits, '.', '-', '_' and '@' are allowed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_validation_table() {
        let ok = [
            "frontend.foocorp.com",
            "localhost",
            "*.foocorp.com",
            "a-b.c1.example",
            "xn--bcher-kva.example",
        ];
        for host in ok {
            assert!(validate_host(host).is_ok(), "{host}");
        }
        let bad = [
            ("", "empty"),
            ("Frontend.foocorp.com", "lowercase"),
            ("foo..com", "empty label"),
            ("foo.com.", "trailing dot"),
            ("-foo.com", "'-'"),
            ("foo_bar.com", "only letters"),
            ("*.com", "two labels"),
            ("foo.*.com", "first label"),
            ("10.0.0.1", "IP address"),
            ("../etc", "empty label"),
            ("a/b.com", "only letters"),
        ];
        for (host, why) in bad {
            let err = validate_host(host).err().map(|e| e.to_string());
            let Some(err) = err else {
                panic!("{host:?} accepted")
            };
            assert!(err.contains(why), "{host:?}: {err}");
        }
    }

    #[test]
    fn name_validation() {
        for name in ["alice", "bob@foocorp.com", "svc_a-1.x"] {
            assert!(validate_name(name).is_ok(), "{name}");
        }
        for name in ["", ".hidden", "a/b", "..", "a b"] {
            assert!(validate_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn layout_paths_match_the_walkthrough() {
        let l = HostLayout::new("/out", "frontend.foocorp.com");
        let d = "/out/frontend.foocorp.com";
        assert_eq!(l.dir, Path::new(d));
        assert_eq!(
            l.root_key,
            Path::new(&format!("{d}/1_root/private/ca.key.pem"))
        );
        assert_eq!(
            l.ca_chain,
            Path::new(&format!("{d}/2_intermediate/certs/ca-chain.cert.pem"))
        );
        assert_eq!(
            l.server_key,
            Path::new(&format!(
                "{d}/3_application/private/frontend.foocorp.com.key.pem"
            ))
        );
        assert_eq!(
            l.client_cert,
            Path::new(&format!("{d}/4_client/certs/frontend.foocorp.com.cert.pem"))
        );
        assert_eq!(
            l.crl,
            Path::new(&format!("{d}/2_intermediate/crl/intermediate.crl.pem"))
        );
        assert_eq!(
            l.client_key_named("alice"),
            Path::new(&format!("{d}/4_client/private/alice.key.pem"))
        );
    }
}
