//! The store's contract through its public API: apply, get, list, delete,
//! outcomes, resource versions, all-or-nothing batches, file modes, URLs.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use gatehouse::store::{
    self, AnyStore, DirStore, ObjectKey, Outcome, Put, Store, StoreError, location_from_env,
};

fn key(kind: &str, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new(kind, namespace, name)
}

fn put(key: &ObjectKey, value: &str) -> Put {
    Put::new(key.clone(), value.as_bytes().to_vec())
}

fn expect(key: &ObjectKey, value: &str, expected_version: u64) -> Put {
    Put {
        expected_version: Some(expected_version),
        ..put(key, value)
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn apply_get_list_delete_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("nested/store");
    let store = store::open(&format!("dir:{}", root.display())).unwrap();
    assert_eq!(mode(&root), 0o700, "open creates the store directory 0700");

    let gw = key("Gateway", "istio-system", "mygateway");
    let vs = key("VirtualService", "default", "httpbin");
    let node = key("ClusterThing", "", "one");

    let created = store
        .apply(vec![put(&gw, r#"{"v":1}"#), put(&vs, r#"{"v":1}"#)])
        .await
        .unwrap();
    assert_eq!(
        created,
        vec![
            (gw.clone(), Outcome::Created, 1),
            (vs.clone(), Outcome::Created, 2)
        ]
    );

    let got = store.get(&gw).await.unwrap().unwrap();
    assert_eq!(
        (got.resource_version, got.value.as_slice()),
        (1, &br#"{"v":1}"#[..])
    );
    assert_eq!(
        store
            .get(&key("Gateway", "istio-system", "nope"))
            .await
            .unwrap(),
        None
    );

    let second = store
        .apply(vec![
            put(&gw, r#"{"v":1}"#),
            put(&vs, r#"{"v":2}"#),
            put(&node, "{}"),
        ])
        .await
        .unwrap();
    assert_eq!(
        second,
        vec![
            (gw.clone(), Outcome::Unchanged, 1),
            (vs.clone(), Outcome::Configured, 3),
            (node.clone(), Outcome::Created, 4),
        ]
    );

    lists_are_sorted_and_filtered(&store, &node, &gw, &vs).await;

    // A write that expects the current version succeeds.
    let third = store
        .apply(vec![expect(&vs, r#"{"v":3}"#, 3)])
        .await
        .unwrap();
    assert_eq!(third, vec![(vs.clone(), Outcome::Configured, 5)]);

    let deleted = store
        .delete(vec![gw.clone(), key("Gateway", "x", "missing"), gw.clone()])
        .await
        .unwrap();
    assert_eq!(deleted, vec![true, false, false]);
    assert_eq!(store.get(&gw).await.unwrap(), None);
    assert_eq!(store.list(None, None).await.unwrap().1, 6);

    // Deleting nothing is no change.
    assert_eq!(store.delete(vec![gw.clone()]).await.unwrap(), vec![false]);
    assert_eq!(store.list(None, None).await.unwrap().1, 6);

    // Re-creating gets a new, higher version.
    let again = store.apply(vec![put(&gw, r#"{"v":1}"#)]).await.unwrap();
    assert_eq!(again, vec![(gw.clone(), Outcome::Created, 7)]);

    // A second instance (as another process would open it) sees it all.
    let other = DirStore::open(&root).unwrap();
    let (mine, rev_mine) = store.list(None, None).await.unwrap();
    let (theirs, rev_theirs) = other.list(None, None).await.unwrap();
    assert_eq!((mine, rev_mine), (theirs, rev_theirs));
}

/// After the round trip's second apply (revision 4): lists are sorted by
/// key and filter by kind and namespace (`""` is cluster scope).
async fn lists_are_sorted_and_filtered(
    store: &AnyStore,
    node: &ObjectKey,
    gw: &ObjectKey,
    vs: &ObjectKey,
) {
    let (all, revision) = store.list(None, None).await.unwrap();
    assert_eq!(revision, 4);
    let keys: Vec<_> = all.iter().map(|o| o.key.clone()).collect();
    assert_eq!(
        keys,
        vec![node.clone(), gw.clone(), vs.clone()],
        "sorted by key"
    );
    assert_eq!(all[2].resource_version, 3);
    assert_eq!(all[2].value, br#"{"v":2}"#);

    let (gateways, _) = store.list(Some("Gateway"), None).await.unwrap();
    assert_eq!(gateways.len(), 1);
    let (default_ns, _) = store.list(None, Some("default")).await.unwrap();
    assert_eq!(&default_ns[0].key, vs);
    let (cluster, _) = store.list(None, Some("")).await.unwrap();
    assert_eq!(&cluster[0].key, node);
    let (none, revision) = store.list(Some("Secret"), Some("default")).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(revision, 4);
}

#[tokio::test]
async fn a_conflict_writes_nothing_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DirStore::open(tmp.path()).unwrap();
    let a = key("Gateway", "ns", "a");
    let b = key("Gateway", "ns", "b");
    let c = key("Gateway", "ns", "c");
    store.apply(vec![put(&a, "1"), put(&b, "1")]).await.unwrap();
    let before = store.list(None, None).await.unwrap();
    let log_before = std::fs::read(tmp.path().join("log.jsonl")).unwrap();

    // The conflicting put comes last: the ones before it must not land.
    let err = store
        .apply(vec![put(&c, "new"), put(&a, "2"), expect(&b, "2", 7)])
        .await
        .unwrap_err();
    match &err {
        StoreError::Conflict {
            key,
            expected,
            actual,
        } => assert_eq!((key, *expected, *actual), (&b, 7, 2)),
        other => panic!("want Conflict, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("Gateway/ns/b"), "{message}");
    assert!(!message.contains('\n'), "{message}");

    // Must-not-exist on an existing object.
    let err = store
        .apply(vec![expect(&c, "x", 0), expect(&a, "x", 0)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{err:?}"
    );

    // The same key twice in one batch is refused before anything happens.
    let err = store
        .apply(vec![put(&c, "1"), put(&c, "2")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateKey { .. }), "{err:?}");

    assert_eq!(store.list(None, None).await.unwrap(), before);
    assert_eq!(store.get(&c).await.unwrap(), None);
    assert_eq!(
        std::fs::read(tmp.path().join("log.jsonl")).unwrap(),
        log_before,
        "a refused batch leaves no trace in the change log"
    );

    // Must-not-exist on a new object works.
    let ok = store.apply(vec![expect(&c, "x", 0)]).await.unwrap();
    assert_eq!(ok, vec![(c, Outcome::Created, 3)]);
}

#[tokio::test]
async fn keys_that_could_escape_the_directory_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DirStore::open(tmp.path()).unwrap();
    let good = key("Secret", "ns", "ok");
    for bad in [
        key("Secret", "ns", "../../etc/passwd"),
        key("Secret", "ns", "a/b"),
        key("Secret", "..", "x"),
        key("Secret", "ns", ".hidden"),
        key("Secret", "ns", ""),
        key("", "ns", "x"),
        key("Se/cret", "ns", "x"),
        key("Secret", "_cluster", "x"),
        key("Secret", "ns", "new\nline"),
    ] {
        let err = store
            .apply(vec![put(&good, "1"), put(&bad, "1")])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidKey { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(!err.to_string().contains('\n'), "{err}");
        assert!(store.get(&bad).await.is_err());
        assert!(store.delete(vec![bad]).await.is_err());
    }
    assert!(store.list(Some(".."), None).await.is_err());
    assert!(store.list(None, Some("../x")).await.is_err());
    assert_eq!(store.list(None, None).await.unwrap(), (vec![], 0));
}

#[tokio::test]
async fn values_round_trip_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DirStore::open(tmp.path()).unwrap();
    let values: [&[u8]; 4] = [
        b"",
        b"{\"a\":\"\\u00e9\\n\"}",
        "é\n\"".as_bytes(),
        b"\xff\x00\x01",
    ];
    for (i, value) in values.iter().enumerate() {
        let k = key("Blob", "ns", &format!("v{i}"));
        store
            .apply(vec![Put::new(k.clone(), value.to_vec())])
            .await
            .unwrap();
        assert_eq!(store.get(&k).await.unwrap().unwrap().value, *value);
    }
}

#[tokio::test]
async fn every_file_is_private_and_secrets_are_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DirStore::open(tmp.path().join("s")).unwrap();
    let secret = key("Secret", "istio-system", "httpbin-credential");
    store
        .apply(vec![
            put(&secret, r#"{"data":{"key":"PRIVATE"}}"#),
            put(&key("Gateway", "istio-system", "gw"), "{}"),
        ])
        .await
        .unwrap();
    // Overwrite and delete too, so that every write path has run.
    store
        .apply(vec![put(&secret, r#"{"data":{"key":"OTHER"}}"#)])
        .await
        .unwrap();
    store
        .delete(vec![key("Gateway", "istio-system", "gw")])
        .await
        .unwrap();

    let secret_path = store.object_path(&secret).unwrap();
    assert_eq!(mode(&secret_path), 0o600, "{}", secret_path.display());
    let all = files(store.root());
    assert!(all.iter().any(|p| p.ends_with("log.jsonl")));
    for path in &all {
        assert_eq!(mode(path), 0o600, "{}", path.display());
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(
            !name.starts_with('.'),
            "temporary file left: {}",
            path.display()
        );
    }
    assert_eq!(mode(store.root()), 0o700);
    assert_eq!(mode(secret_path.parent().unwrap()), 0o700);
}

#[test]
fn unsupported_urls_name_the_supported_schemes() {
    // etcd is supported now; other schemes are refused with the list.
    assert!(matches!(
        store::open("etcd://127.0.0.1:2379"),
        Ok(AnyStore::Etcd(_))
    ));
    let err = store::open("consul://127.0.0.1:8500").unwrap_err();
    assert!(matches!(err, StoreError::BadUrl(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("dir:"), "{message}");
    assert!(message.contains("etcd"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn bare_paths_and_dir_urls_open_the_same_store() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bare");
    let AnyStore::Dir(bare) = store::open(path.to_str().unwrap()).unwrap() else {
        panic!("a bare path is a dir store");
    };
    assert_eq!(bare.root(), path);
    let AnyStore::Dir(url) = store::open(&format!("dir://{}", path.display())).unwrap() else {
        panic!("dir:// is a dir store");
    };
    assert_eq!(url.root(), path);
}

#[test]
fn default_location_honours_xdg_data_home() {
    let some = |s: &str| Some(std::ffi::OsString::from(s));
    assert_eq!(
        location_from_env(some("/data"), some("/home/me")).unwrap(),
        Path::new("/data/gatehouse")
    );
    assert_eq!(
        location_from_env(None, some("/home/me")).unwrap(),
        Path::new("/home/me/.local/share/gatehouse")
    );
    assert!(matches!(
        location_from_env(None, None),
        Err(StoreError::NoDefaultLocation)
    ));
    // The real environment gives some answer without panicking.
    let _ = store::default_location();
}
