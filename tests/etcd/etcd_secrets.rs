//! Scale-out, done when #4: Secrets are encrypted at rest in etcd. After
//! the walkthrough's `create secret`, `etcdctl get --prefix /gatehouse/`
//! shows no private key or certificate in any form (PEM, the base64 of PEM
//! a manifest carries, the base64 of the key's DER); each value carries the
//! id of the key that sealed it. `gatehouse get secret` tables show none
//! either; `get secret NAME -o yaml` with the key file gives the original
//! bytes back. Without a key file, storing a Secret exits 1 with the
//! `gatehouse keygen` hint, and reading one names the missing key file.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use crate::support::etcd::{Cluster, EtcdSite};
use crate::support::{FRONTEND, INVENTORY, Site};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// What must never appear in etcd or in a table: `BEGIN` of any PEM, the
/// base64 of `-----BEGIN`, and pieces of the private keys' own base64
/// (their DER, as the PEM body carries it, and the DER re-encoded).
fn needles(site: &EtcdSite) -> Vec<String> {
    let mut n = vec!["BEGIN".to_owned(), "LS0tLS1CRUdJTi".to_owned()];
    for host in [FRONTEND, INVENTORY] {
        let pem = std::fs::read_to_string(site.path(site.site.pki(host).server_key)).unwrap();
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        // Past the algorithm header that every P-256 PKCS#8 key shares.
        let der = STANDARD.decode(&body).unwrap();
        n.push(body[body.len() / 2..body.len() / 2 + 24].to_owned());
        n.push(body[body.len() - 28..].to_owned());
        n.push(STANDARD.encode(&der[der.len() / 2..])[..24].to_owned());
        n.push(STANDARD.encode(pem.as_bytes())[20..60].to_owned());
    }
    n
}

#[track_caller]
fn assert_clean(what: &str, text: &[u8], needles: &[String]) {
    for n in needles {
        assert!(
            !text.windows(n.len()).any(|w| w == n.as_bytes()),
            "{what} contains {n:?}:\n{}",
            String::from_utf8_lossy(text)
        );
    }
}

/// Without a key file, a Secret is refused with the way to make one, and
/// nothing reaches etcd.
fn refused_without_a_key(site: &EtcdSite, cluster: &Cluster) {
    let args = Site::create_secret_args(
        FRONTEND,
        &format!("{FRONTEND}/3_application/private/{FRONTEND}.key.pem"),
        &format!("{FRONTEND}/3_application/certs/{FRONTEND}.cert.pem"),
        &[],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = site.cli_without_key(&args);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr,
        "error: Secret/istio-system/frontend-credential: storing a Secret in etcd needs an encryption key: make one with `gatehouse keygen --out FILE` and pass --encryption-key-file FILE\n"
    );
    let mut manifest_args = args.clone();
    manifest_args.extend(["--dry-run=client", "-o", "yaml"]);
    let manifest = site.cli_without_key(&manifest_args).ok().stdout;
    site.write("secret.yaml", &manifest);
    let out = site.cli_without_key(&["apply", "-f", "secret.yaml"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("gatehouse keygen --out FILE"),
        "{out:?}"
    );
    let stored = cluster
        .etcdctl(&["get", "--prefix", "/gatehouse/", "--keys-only"])
        .ok();
    assert_eq!(stored.stdout.trim(), "", "a refused Secret reached etcd");
}

/// What etcd holds for the two secrets is sealed with the site's key and
/// shows none of the `needles`, through etcdctl's text and its JSON.
fn sealed_in_etcd(site: &EtcdSite, cluster: &Cluster, needles: &[String]) {
    let plain = cluster.etcdctl(&["get", "--prefix", "/gatehouse/"]).ok();
    assert!(
        plain
            .stdout
            .contains("/gatehouse/Secret/istio-system/frontend-credential\n"),
        "{plain:?}"
    );
    assert_clean(
        "etcdctl get --prefix /gatehouse/",
        plain.stdout.as_bytes(),
        needles,
    );
    // The exact bytes, through etcdctl's JSON (values in base64).
    let json = cluster
        .etcdctl(&["get", "--prefix", "/gatehouse/", "-w", "json"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let kvs = v["kvs"].as_array().unwrap();
    assert_eq!(kvs.len(), 2, "{v}");
    let sealed_prefix = format!("gatehouse:enc:aes256gcm:v1:{}:", site.key_id());
    for kv in kvs {
        let key = STANDARD.decode(kv["key"].as_str().unwrap()).unwrap();
        let value = STANDARD.decode(kv["value"].as_str().unwrap()).unwrap();
        let key = String::from_utf8(key).unwrap();
        assert!(
            value.starts_with(sealed_prefix.as_bytes()),
            "{key} is not sealed with key {}",
            site.key_id()
        );
        assert_clean(&key, &value, needles);
    }
}

/// Tables never show key material.
fn tables_never_show_key_material(site: &EtcdSite, needles: &[String]) {
    for args in [
        &["-n", "istio-system", "get", "secret"][..],
        &["-n", "istio-system", "get", "secret", "-o", "wide"],
        &["get", "secret", "-A"],
    ] {
        let out = site.cli(args).ok();
        assert!(out.stdout.contains("frontend-credential"), "{out:?}");
        assert!(out.stdout.contains("inventory-credential"), "{out:?}");
        assert_clean(
            &format!("gatehouse {args:?}"),
            out.stdout.as_bytes(),
            needles,
        );
        assert_clean(
            &format!("gatehouse {args:?}"),
            out.stderr.as_bytes(),
            needles,
        );
    }
}

#[test]
fn secrets_are_sealed_in_etcd_and_never_shown_in_plain_text() {
    let cluster = Cluster::start(1);
    let site = EtcdSite::new(&cluster.url());
    let mode = std::fs::metadata(&site.key_file)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "gatehouse keygen must write the key file 0600");
    for host in [FRONTEND, INVENTORY] {
        site.site.pki_init(host);
    }
    let needles = needles(&site);

    refused_without_a_key(&site, &cluster);

    // With the key: the walkthrough's secrets, sealed.
    site.create_walkthrough_secret(FRONTEND);
    site.apply("secret-inventory.yaml", &{
        let args = Site::create_secret_args(
            INVENTORY,
            &format!("{INVENTORY}/3_application/private/{INVENTORY}.key.pem"),
            &format!("{INVENTORY}/3_application/certs/{INVENTORY}.cert.pem"),
            &["--dry-run=client", "-o", "yaml"],
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        site.cli(&args).ok().stdout
    });

    sealed_in_etcd(&site, &cluster, &needles);

    tables_never_show_key_material(&site, &needles);

    // With the key file, -o yaml gives the original bytes back.
    let out = site
        .cli(&[
            "-n",
            "istio-system",
            "get",
            "secret",
            "frontend-credential",
            "-o",
            "yaml",
        ])
        .ok();
    // (The needles are real: the decrypted manifest carries some of them.)
    assert!(out.stdout.contains(&needles[1]) && out.stdout.contains(&needles[5]));
    let doc: serde_json::Value = serde_saphyr::from_str(&out.stdout).unwrap();
    let pki = site.site.pki(FRONTEND);
    for (field, path) in [
        ("key", &pki.server_key),
        ("cert", &pki.server_cert),
        ("cacert", &pki.ca_chain),
    ] {
        let got = STANDARD
            .decode(doc["data"][field].as_str().unwrap())
            .unwrap();
        assert_eq!(got, std::fs::read(site.path(path)).unwrap(), "data.{field}");
    }

    // Without it, reading one says which file is missing and shows nothing.
    let out = site.cli_without_key(&[
        "-n",
        "istio-system",
        "get",
        "secret",
        "frontend-credential",
        "-o",
        "yaml",
    ]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("--encryption-key-file") && out.stdout.is_empty(),
        "{out:?}"
    );
    assert_clean(
        "get secret without the key",
        out.stderr.as_bytes(),
        &needles,
    );
}
