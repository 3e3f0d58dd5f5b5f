//! `gatehouse::pki` checked with the tools people will use on its output:
//! the openssl CLI (verify, x509, crl, pkey, asn1parse) and rustls handshakes.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::support;
use gatehouse::pki::{
    self, Ca, CaSpec, CrlSpec, HostLayout, InitOptions, Issued, KeyType, LeafSpec, PkiError,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

const HOST: &str = "frontend.foocorp.com";

/// Runs openssl; returns (exit success, stdout + stderr).
fn openssl<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (bool, String) {
    let out = support::command("openssl").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn openssl_ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let (ok, text) = openssl(args);
    assert!(ok, "openssl {args:?} failed:\n{text}");
    text
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn opts(out: &Path, host: &str, key_type: KeyType, days: u32, force: bool) -> InitOptions {
    InitOptions {
        host: host.to_string(),
        out: out.to_path_buf(),
        key_type,
        days,
        force,
    }
}

fn init_tree(out: &Path, key_type: KeyType, force: bool) -> Result<HostLayout, PkiError> {
    pki::init(&opts(out, HOST, key_type, 30, force))
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Writes `text` to `dir/name` and returns the path (for openssl arguments).
fn put(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

fn verify(chain: &Path, cert: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["verify"];
    args.extend_from_slice(extra);
    args.extend(["-CAfile", path(chain), path(cert)]);
    openssl(&args)
}

fn verify_ok(chain: &Path, cert: &Path, extra: &[&str]) {
    let (ok, text) = verify(chain, cert, extra);
    assert!(ok && text.contains(": OK"), "{}: {text}", cert.display());
}

fn verify_fails(chain: &Path, cert: &Path, extra: &[&str], why: &str) {
    let (ok, text) = verify(chain, cert, extra);
    assert!(
        !ok && text.contains(why),
        "{}: want {why:?}: {text}",
        cert.display()
    );
}

fn ext(cert: &Path, which: &str) -> String {
    openssl_ok(&["x509", "-noout", "-ext", which, "-in", path(cert)])
}

fn key_matches_cert(cert: &Path, key: &Path) {
    let from_cert = openssl_ok(&["x509", "-noout", "-pubkey", "-in", path(cert)]);
    let from_key = openssl_ok(&["pkey", "-pubout", "-in", path(key)]);
    assert_eq!(
        from_cert,
        from_key,
        "{} vs {}",
        cert.display(),
        key.display()
    );
}

/// Checks a whole `init` tree with openssl.
fn check_tree(layout: &HostLayout, key_type: KeyType) {
    check_files_and_keys(layout);
    check_certificates(layout, key_type);
}

/// Every file of the tree is there; keys are PKCS#8, 0600 in 0700 folders.
fn check_files_and_keys(layout: &HostLayout) {
    let all = [
        &layout.root_cert,
        &layout.root_key,
        &layout.intermediate_cert,
        &layout.intermediate_key,
        &layout.ca_chain,
        &layout.server_cert,
        &layout.server_key,
        &layout.client_cert,
        &layout.client_key,
        &layout.crl,
        &layout.index,
    ];
    for p in all {
        assert!(p.is_file(), "{} missing", p.display());
    }
    for key in [
        &layout.root_key,
        &layout.intermediate_key,
        &layout.server_key,
        &layout.client_key,
    ] {
        assert_eq!(mode(key), 0o600, "{}", key.display());
        assert_eq!(mode(key.parent().unwrap()), 0o700, "{}", key.display());
        let pem = fs::read_to_string(key).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "not PKCS#8");
    }
}

/// The tree's certificates, chain and CRL as openssl sees them.
fn check_certificates(layout: &HostLayout, key_type: KeyType) {
    // ca-chain is the intermediate then the root.
    let chain = fs::read_to_string(&layout.ca_chain).unwrap();
    let inter = fs::read_to_string(&layout.intermediate_cert).unwrap();
    let root = fs::read_to_string(&layout.root_cert).unwrap();
    assert_eq!(chain, format!("{inter}{root}"));
    assert!(ext(&layout.intermediate_cert, "basicConstraints").contains("CA:TRUE, pathlen:0"));
    // The root is self-signed.
    verify_ok(&layout.root_cert, &layout.root_cert, &[]);

    for cert in [&layout.server_cert, &layout.client_cert] {
        verify_ok(&layout.ca_chain, cert, &[]);
        let sans = ext(cert, "subjectAltName");
        assert!(sans.contains(&format!("DNS:{HOST}")), "{sans}");
        let subject = openssl_ok(&["x509", "-noout", "-subject", "-in", path(cert)]);
        assert!(subject.contains(&format!("CN = {HOST}")), "{subject}");
        let usage = ext(cert, "keyUsage");
        assert!(usage.contains("Digital Signature"), "{usage}");
        assert_eq!(
            usage.contains("Key Encipherment"),
            key_type == KeyType::Rsa2048,
            "{usage}"
        );
        let text = openssl_ok(&["x509", "-noout", "-text", "-in", path(cert)]);
        let want = match key_type {
            KeyType::EcdsaP256 => "prime256v1",
            KeyType::Rsa2048 => "Public-Key: (2048 bit)",
        };
        assert!(text.contains(want), "{text}");
    }
    let server_eku = ext(&layout.server_cert, "extendedKeyUsage");
    assert!(
        server_eku.contains("TLS Web Server Authentication"),
        "{server_eku}"
    );
    assert!(!server_eku.contains("Client"), "{server_eku}");
    let client_eku = ext(&layout.client_cert, "extendedKeyUsage");
    assert!(
        client_eku.contains("TLS Web Client Authentication"),
        "{client_eku}"
    );
    assert!(!client_eku.contains("Server"), "{client_eku}");

    verify_ok(
        &layout.ca_chain,
        &layout.server_cert,
        &["-purpose", "sslserver"],
    );
    verify_ok(
        &layout.ca_chain,
        &layout.client_cert,
        &["-purpose", "sslclient"],
    );

    key_matches_cert(&layout.server_cert, &layout.server_key);
    key_matches_cert(&layout.client_cert, &layout.client_key);
    key_matches_cert(&layout.intermediate_cert, &layout.intermediate_key);
    key_matches_cert(&layout.root_cert, &layout.root_key);

    // The fresh CRL is empty, current, and good enough for -crl_check.
    let crl = openssl_ok(&["crl", "-noout", "-text", "-in", path(&layout.crl)]);
    assert!(crl.contains("No Revoked Certificates"), "{crl}");
    let crl_arg = format!("-CRLfile={}", path(&layout.crl));
    verify_ok(
        &layout.ca_chain,
        &layout.server_cert,
        &["-crl_check", &crl_arg],
    );
}

fn serial_of(cert: &Path) -> String {
    let out = openssl_ok(&["x509", "-noout", "-serial", "-in", path(cert)]);
    out.trim().trim_start_matches("serial=").to_string()
}

#[test]
fn init_makes_the_walkthrough_tree_and_refuses_to_clobber_it() {
    let dir = tempfile::tempdir().unwrap();
    let layout = init_tree(dir.path(), KeyType::EcdsaP256, false).unwrap();
    assert_eq!(layout, HostLayout::new(dir.path(), HOST));
    check_tree(&layout, KeyType::EcdsaP256);

    // Serials: random, 16 octets, positive (no sign octet), all distinct.
    let certs = [
        &layout.root_cert,
        &layout.intermediate_cert,
        &layout.server_cert,
        &layout.client_cert,
    ];
    let serials: Vec<String> = certs.iter().map(|c| serial_of(c)).collect();
    for s in &serials {
        assert_eq!(s.len(), 32, "{s}");
        assert!(u8::from_str_radix(&s[..2], 16).unwrap() < 0x80, "{s}");
    }
    let mut unique = serials.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), serials.len());

    let err = init_tree(dir.path(), KeyType::EcdsaP256, false).unwrap_err();
    assert!(matches!(err, PkiError::Exists { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(path(&layout.dir)) && msg.contains("use --force"),
        "{msg}"
    );
    assert_eq!(
        serial_of(&layout.server_cert),
        serials[2],
        "refused init changed files"
    );

    let again = init_tree(dir.path(), KeyType::EcdsaP256, true).unwrap();
    check_tree(&again, KeyType::EcdsaP256);
    assert_ne!(serial_of(&again.server_cert), serials[2]);
    // No temporary files are left behind.
    let leftovers: Vec<_> = walk(&layout.dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn init_with_rsa_2048() {
    let dir = tempfile::tempdir().unwrap();
    let layout = init_tree(dir.path(), KeyType::Rsa2048, false).unwrap();
    check_tree(&layout, KeyType::Rsa2048);
}

#[test]
fn init_rejects_bad_hosts_and_days() {
    let dir = tempfile::tempdir().unwrap();
    for host in ["Frontend.foocorp.com", "../escape", "10.0.0.1", "a b", ""] {
        let err = pki::init(&opts(dir.path(), host, KeyType::EcdsaP256, 30, false)).unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidHost { .. }),
            "{host:?}: {err}"
        );
    }
    let err = pki::init(&opts(
        dir.path(),
        "*.foocorp.com",
        KeyType::EcdsaP256,
        0,
        false,
    ))
    .unwrap_err();
    assert!(matches!(err, PkiError::InvalidDays { days: 0 }), "{err}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn wildcard_host() {
    let dir = tempfile::tempdir().unwrap();
    let layout = pki::init(&opts(
        dir.path(),
        "*.foocorp.com",
        KeyType::EcdsaP256,
        1,
        false,
    ))
    .unwrap();
    assert!(ext(&layout.server_cert, "subjectAltName").contains("DNS:*.foocorp.com"));
    verify_ok(&layout.ca_chain, &layout.server_cert, &[]);
}

#[test]
fn issue_client_revoke_and_crl_check() {
    let dir = tempfile::tempdir().unwrap();
    let layout = init_tree(dir.path(), KeyType::EcdsaP256, false).unwrap();

    let (alice, alice_key) = pki::issue_client(dir.path(), HOST, "alice", 10, false).unwrap();
    let (bob, _) = pki::issue_client(dir.path(), HOST, "bob", 10, false).unwrap();
    assert_eq!(alice, layout.client_cert_named("alice"));
    assert_eq!(mode(&alice_key), 0o600);
    key_matches_cert(&alice, &alice_key);
    let subject = openssl_ok(&["x509", "-noout", "-subject", "-in", path(&alice)]);
    assert!(subject.contains("CN = alice"), "{subject}");
    assert!(ext(&alice, "extendedKeyUsage").contains("TLS Web Client Authentication"));
    verify_ok(&layout.ca_chain, &alice, &["-purpose", "sslclient"]);

    let err = pki::issue_client(dir.path(), HOST, "alice", 10, false).unwrap_err();
    assert!(err.to_string().contains("use --force"), "{err}");
    let before = serial_of(&alice);
    pki::issue_client(dir.path(), HOST, "alice", 10, true).unwrap();
    assert_ne!(serial_of(&alice), before);
    assert_eq!(mode(&alice_key), 0o600);
    let err = pki::issue_client(dir.path(), HOST, "../x", 10, false).unwrap_err();
    assert!(matches!(err, PkiError::InvalidName { .. }), "{err}");
    let err = pki::issue_client(dir.path(), "other.foocorp.com", "x", 10, false).unwrap_err();
    assert!(matches!(err, PkiError::NotInitialized { .. }), "{err}");
    assert!(err.to_string().contains("pki init"), "{err}");

    let crl = pki::revoke(dir.path(), HOST, &alice).unwrap();
    assert_eq!(crl, layout.crl);
    let text = openssl_ok(&["crl", "-noout", "-text", "-in", path(&crl)]);
    let alice_serial = serial_of(&alice);
    assert!(
        text.contains(&format!("Serial Number: {alice_serial}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("CN = {HOST} Intermediate CA")),
        "{text}"
    );
    // The CRL is signed by the intermediate.
    openssl_ok(&[
        "crl",
        "-noout",
        "-in",
        path(&crl),
        "-CAfile",
        path(&layout.ca_chain),
    ]);

    let crl_arg = format!("-CRLfile={}", path(&crl));
    verify_fails(
        &layout.ca_chain,
        &alice,
        &["-crl_check", &crl_arg],
        "certificate revoked",
    );
    verify_ok(&layout.ca_chain, &bob, &["-crl_check", &crl_arg]);

    // Revoking again changes nothing; revoking bob keeps alice.
    pki::revoke(dir.path(), HOST, &alice).unwrap();
    pki::revoke(dir.path(), HOST, &bob).unwrap();
    let index = pki::read_index(&layout.index).unwrap();
    assert_eq!(index.len(), 2, "{index:?}");
    let text = openssl_ok(&["crl", "-noout", "-text", "-in", path(&crl)]);
    assert_eq!(text.matches("Serial Number:").count(), 2, "{text}");
    for cert in [&alice, &bob] {
        let (ok, _) = verify(&layout.ca_chain, cert, &["-crl_check", &crl_arg]);
        assert!(!ok);
    }
    // write_crl rebuilds the same list from the index.
    fs::remove_file(&crl).unwrap();
    pki::write_crl(dir.path(), HOST).unwrap();
    let text = openssl_ok(&["crl", "-noout", "-text", "-in", path(&crl)]);
    assert!(
        text.contains(&format!("Serial Number: {alice_serial}")),
        "{text}"
    );

    // A certificate from another CA cannot be revoked here.
    let stranger = Ca::new_root("stranger", KeyType::EcdsaP256)
        .unwrap()
        .issue(&LeafSpec::client("mallory"))
        .unwrap();
    let stranger_path = put(dir.path(), "stranger.pem", &stranger.cert_pem);
    let err = pki::revoke(dir.path(), HOST, &stranger_path).unwrap_err();
    assert!(matches!(err, PkiError::NotIssuedBy { .. }), "{err}");
    assert!(err.to_string().contains("stranger.pem"), "{err}");
}

#[test]
fn builder_makes_expired_and_not_yet_valid_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new_root("Test Root", KeyType::EcdsaP256).unwrap();
    let inter = root.intermediate("Test Intermediate").unwrap();
    let chain = put(dir.path(), "chain.pem", &inter.chain_pem());

    let good = inter.issue(&LeafSpec::server("good.test")).unwrap();
    let good_path = put(dir.path(), "good.pem", &good.cert_pem);
    let (ok, text) = openssl(&["x509", "-noout", "-checkend", "0", "-in", path(&good_path)]);
    assert!(ok, "{text}");
    verify_ok(&chain, &good_path, &[]);

    let expired = inter
        .issue(&LeafSpec::server("old.test").expired())
        .unwrap();
    let expired_path = put(dir.path(), "expired.pem", &expired.cert_pem);
    let (ok, text) = openssl(&[
        "x509",
        "-noout",
        "-checkend",
        "0",
        "-in",
        path(&expired_path),
    ]);
    assert!(!ok && text.contains("Certificate will expire"), "{text}");
    verify_fails(&chain, &expired_path, &[], "certificate has expired");

    let early = inter
        .issue(&LeafSpec::server("new.test").not_yet_valid())
        .unwrap();
    let early_path = put(dir.path(), "early.pem", &early.cert_pem);
    verify_fails(&chain, &early_path, &[], "not yet valid");
}

#[test]
fn builder_serial_fingerprint_sans_and_usages() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new_root("Test Root", KeyType::EcdsaP256).unwrap();
    let spec = LeafSpec::server("api.test")
        .dns("alt.test")
        .ip("127.0.0.1".parse().unwrap())
        .uri("spiffe://cluster.local/ns/ux/sa/frontend")
        .client_auth(true);
    let leaf = root.issue(&spec).unwrap();
    let p = put(dir.path(), "leaf.pem", &leaf.cert_pem);

    assert_eq!(serial_of(&p), leaf.serial_hex.to_uppercase());
    let fp = openssl_ok(&["x509", "-noout", "-fingerprint", "-sha256", "-in", path(&p)]);
    let fp = fp.trim().rsplit('=').next().unwrap().replace(':', "");
    assert_eq!(fp, leaf.sha256_fingerprint_hex.to_uppercase());

    let sans = ext(&p, "subjectAltName");
    for want in [
        "DNS:api.test",
        "DNS:alt.test",
        "IP Address:127.0.0.1",
        "URI:spiffe://cluster.local/ns/ux/sa/frontend",
    ] {
        assert!(sans.contains(want), "{want} not in {sans}");
    }
    let eku = ext(&p, "extendedKeyUsage");
    assert!(eku.contains("Server") && eku.contains("Client"), "{eku}");

    // A client certificate without clientAuth fails openssl's client purpose.
    let chain = put(dir.path(), "root.pem", root.cert_pem());
    let no_client = root
        .issue(&LeafSpec::client("nobody").client_auth(false))
        .unwrap();
    let np = put(dir.path(), "noclient.pem", &no_client.cert_pem);
    let eku = ext(&np, "extendedKeyUsage");
    assert!(
        !eku.contains("Extended Key Usage"),
        "no EKU extension at all: {eku}"
    );
    let server_only = root.issue(&LeafSpec::server("nobody")).unwrap();
    let sp = put(dir.path(), "serveronly.pem", &server_only.cert_pem);
    let why = "unsuitable certificate purpose";
    verify_fails(&chain, &sp, &["-purpose", "sslclient"], why);

    // Debug never shows the key.
    let shown = format!("{leaf:?} {root:?}");
    assert!(
        shown.contains("<redacted>") && !shown.contains("PRIVATE KEY"),
        "{shown}"
    );
    assert!(leaf.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(root.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn builder_chain_path_length_and_crls() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new_root("Test Root", KeyType::Rsa2048).unwrap();
    let inter = root.intermediate("Test Intermediate").unwrap();
    assert_eq!(inter.key_type(), KeyType::Rsa2048);
    assert_eq!(
        inter.chain_pem(),
        format!("{}{}", inter.cert_pem(), root.cert_pem())
    );
    assert_eq!(inter.root_pem(), root.cert_pem());

    // pathlen 0: an intermediate under the intermediate breaks the chain.
    let too_deep = inter.intermediate("Too Deep").unwrap();
    let leaf = too_deep.issue(&LeafSpec::server("deep.test")).unwrap();
    let chain = put(dir.path(), "deep-chain.pem", &too_deep.chain_pem());
    let lp = put(dir.path(), "deep.pem", &leaf.cert_pem);
    verify_fails(&chain, &lp, &[], "path length constraint exceeded");

    // An unconstrained intermediate allows it.
    let open = root
        .intermediate_from_spec(
            &CaSpec::intermediate("Open")
                .key_type(KeyType::Rsa2048)
                .path_len(None),
        )
        .unwrap();
    let below = open.intermediate("Below Open").unwrap();
    let leaf = below.issue(&LeafSpec::server("ok.test")).unwrap();
    let chain = put(dir.path(), "open-chain.pem", &below.chain_pem());
    let lp = put(dir.path(), "ok.pem", &leaf.cert_pem);
    verify_ok(&chain, &lp, &[]);
    assert_eq!(leaf.issuer_chain_pem, below.chain_pem());

    // CRLs from the builder.
    let revoked = inter.issue(&LeafSpec::client("gone")).unwrap();
    let kept = inter.issue(&LeafSpec::client("kept")).unwrap();
    let chain = put(dir.path(), "chain.pem", &inter.chain_pem());
    let crl = put(
        dir.path(),
        "crl.pem",
        &inter.crl(&[revoked.serial_hex.as_str()]).unwrap(),
    );
    let crl_arg = format!("-CRLfile={}", path(&crl));
    let rp = put(dir.path(), "revoked.pem", &revoked.cert_pem);
    let kp = put(dir.path(), "kept.pem", &kept.cert_pem);
    verify_fails(
        &chain,
        &rp,
        &["-crl_check", &crl_arg],
        "certificate revoked",
    );
    verify_ok(&chain, &kp, &["-crl_check", &crl_arg]);

    let stale = inter
        .crl_with(&CrlSpec::new(&[kept.serial_hex.as_str()]).expired())
        .unwrap();
    let stale = put(dir.path(), "stale.pem", &stale);
    let stale_arg = format!("-CRLfile={}", path(&stale));
    verify_fails(&chain, &kp, &["-crl_check", &stale_arg], "CRL has expired");

    // Loading a CA back from PEM issues under the same name and key.
    let loaded = Ca::from_pem(inter.cert_pem(), &inter.key_pem(), root.cert_pem()).unwrap();
    assert_eq!(loaded.chain_pem(), inter.chain_pem());
    let again = loaded.issue(&LeafSpec::server("again.test")).unwrap();
    let ap = put(dir.path(), "again.pem", &again.cert_pem);
    verify_ok(&chain, &ap, &["-crl_check", &crl_arg]);
}

#[test]
fn self_signed_leaf_is_trusted_by_nobody_else() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = pki::self_signed(&LeafSpec::server("self.test")).unwrap();
    assert!(leaf.issuer_chain_pem.is_empty());
    let p = put(dir.path(), "self.pem", &leaf.cert_pem);
    let root = Ca::new_root("Test Root", KeyType::EcdsaP256).unwrap();
    let chain = put(dir.path(), "root.pem", root.cert_pem());
    let (ok, text) = verify(&chain, &p, &[]);
    assert!(!ok, "{text}");
}

#[test]
fn encrypted_key_example_is_pkcs8_pbes2_and_unopenable() {
    let dir = tempfile::tempdir().unwrap();
    let pem = pki::encrypted_key_pem_example();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
    let p = put(dir.path(), "enc.pem", &pem);
    let parsed = openssl_ok(&["asn1parse", "-in", path(&p)]);
    for want in ["PBES2", "PBKDF2", "hmacWithSHA256", "aes-256-cbc"] {
        assert!(parsed.contains(want), "{want} not in {parsed}");
    }
    let (ok, text) = openssl(&["pkey", "-in", path(&p), "-passin", "pass:anything"]);
    assert!(!ok, "{text}");
    // rustls' PEM reader does not mistake it for a usable key.
    assert!(PrivateKeyDer::from_pem_slice(pem.as_bytes()).is_err());
}

// --- rustls handshakes -------------------------------------------------

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(pem: &str) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        store.add(der.unwrap()).unwrap();
    }
    Arc::new(store)
}

fn server_config(server: &Issued, client_roots: &str, crls: &[&str]) -> ServerConfig {
    let crls = crls
        .iter()
        .map(|pem| CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).unwrap())
        .collect::<Vec<_>>();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(client_roots), provider())
        .with_crls(crls)
        .only_check_end_entity_revocation()
        .build()
        .unwrap();
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.chain_der().unwrap(), server.key_der().unwrap())
        .unwrap()
}

fn client_config(server_roots: &str, client: &Issued) -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(server_roots))
        .with_client_auth_cert(client.chain_der().unwrap(), client.key_der().unwrap())
        .unwrap()
}

/// Drives a client and a server over memory until both finish the handshake
/// or one of them fails.
fn handshake(server: ServerConfig, client: ClientConfig, sni: &str) -> Result<(), rustls::Error> {
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut c = ClientConnection::new(Arc::new(client), name)?;
    let mut s = ServerConnection::new(Arc::new(server))?;
    for _ in 0..10 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn rustls_accepts_the_tree_and_rejects_the_wrong_certificates() {
    for key_type in KeyType::ALL {
        let root = Ca::new_root("Test Root", key_type).unwrap();
        let inter = root.intermediate("Test Intermediate").unwrap();
        let server = inter
            .issue(&LeafSpec::server(HOST).key_type(key_type))
            .unwrap();
        let client = inter
            .issue(&LeafSpec::client("alice").key_type(key_type))
            .unwrap();
        let trust = root.cert_pem();

        handshake(
            server_config(&server, trust, &[]),
            client_config(trust, &client),
            HOST,
        )
        .unwrap_or_else(|e| panic!("{key_type}: {e}"));

        // Wrong SNI: the client refuses the server certificate.
        let err = handshake(
            server_config(&server, trust, &[]),
            client_config(trust, &client),
            "inventory.foocorp.com",
        )
        .unwrap_err();
        assert!(err.to_string().contains("not valid for name"), "{err}");

        // Expired server certificate.
        let old = inter.issue(&LeafSpec::server(HOST).expired()).unwrap();
        let err = handshake(
            server_config(&old, trust, &[]),
            client_config(trust, &client),
            HOST,
        )
        .unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");

        // A client certificate without clientAuth, or from another CA.
        let no_eku = inter.issue(&LeafSpec::client("bob").client_auth(false).server_auth(true));
        let err = handshake(
            server_config(&server, trust, &[]),
            client_config(trust, &no_eku.unwrap()),
            HOST,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("extended key usage for client authentication"),
            "{err}"
        );
        let stranger = Ca::new_root("Stranger", key_type).unwrap();
        let foreign = stranger.issue(&LeafSpec::client("mallory")).unwrap();
        let err = handshake(
            server_config(&server, trust, &[]),
            client_config(trust, &foreign),
            HOST,
        )
        .unwrap_err();
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");

        // A revoked client certificate.
        let crl = inter.crl(&[client.serial_hex.as_str()]).unwrap();
        let err = handshake(
            server_config(&server, trust, &[&crl]),
            client_config(trust, &client),
            HOST,
        )
        .unwrap_err();
        assert!(err.to_string().contains("Revoked"), "{err}");
    }
}

#[test]
fn rustls_loads_the_init_files() {
    let dir = tempfile::tempdir().unwrap();
    let layout = init_tree(dir.path(), KeyType::EcdsaP256, false).unwrap();
    let read = |p: &Path| fs::read_to_string(p).unwrap();
    let chain = read(&layout.ca_chain);
    let loaded = |cert: &Path, key: &Path| Issued {
        cert_pem: read(cert),
        key_pem: read(key),
        serial_hex: String::new(),
        sha256_fingerprint_hex: String::new(),
        issuer_chain_pem: chain.clone(),
    };
    let server = loaded(&layout.server_cert, &layout.server_key);
    let client = loaded(&layout.client_cert, &layout.client_key);
    let crl = read(&layout.crl);
    handshake(
        server_config(&server, &chain, &[&crl]),
        client_config(&chain, &client),
        HOST,
    )
    .unwrap();
}
