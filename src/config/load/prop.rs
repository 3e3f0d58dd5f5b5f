//! Properties of the manifest loader: any text, and valid manifests with
//! random edits (lines dropped, doubled, swapped or re-indented, scalars
//! changed, keys added, text cut short or spliced in), load or are refused
//! with errors that name the file, each on one line; never a panic. What
//! loads also passes `validate::check` again.

use proptest::prelude::*;

use super::{NamespacePolicy, Source, parse_source};
use crate::config::validate;

/// The walkthrough's objects, as its README applies them.
const WALKTHROUGH: &str = concat!(
    include_str!("../../../examples/foocorp/gateway.yaml"),
    "\n---\n",
    include_str!("../../../examples/foocorp/virtualservices.yaml"),
);

/// Objects that reach the rest of the validator: matches of every kind,
/// redirects, rewrites, direct responses, weights, header operations, a
/// ServiceEntry and a Secret.
const RICH: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: shop
  namespace: ux
spec:
  hosts: [shop.foocorp.com, "*.eu.foocorp.com"]
  gateways: [istio-system/foocorp-gateway]
  http:
  - name: api
    match:
    - uri: {prefix: /api}
      method: {exact: POST}
      headers:
        x-team: {regex: "u[xX]+"}
      queryParams:
        v: {exact: "2"}
      ignoreUriCase: true
      port: 443
    - withoutHeaders:
        x-debug: {}
    rewrite: {uri: /v2, authority: api.internal}
    timeout: 1.5s
    headers:
      request:
        set: {x-from: gatehouse}
        remove: [cookie]
      response:
        add: {x-served-by: shop}
    route:
    - destination: {host: api, port: {number: 8080}}
      weight: 90
    - destination: {host: api-canary.ux.svc.cluster.local, port: {number: 8080}}
      weight: 10
  - match:
    - uri: {exact: /old}
    redirect: {uri: /new, authority: shop.foocorp.com, redirectCode: 308, scheme: https, port: 8443}
  - match:
    - uri: {regex: "/health(z)?"}
    directResponse:
      status: 200
      body: {string: ok}
  - route:
    - destination: {host: web.ux.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: ux}
spec:
  hosts: [api.ux.svc.cluster.local]
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9000}}
---
apiVersion: v1
kind: Secret
metadata: {name: frontend-credential, namespace: istio-system}
type: kubernetes.io/tls
stringData:
  tls.crt: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
  tls.key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
"#;

const SCALARS: &[&str] = &[
    "0",
    "-1",
    "65536",
    "4294967296",
    "1e400",
    "1.5",
    "true",
    "null",
    "~",
    "''",
    "\"\"",
    "*",
    "[]",
    "{}",
    "[a, b]",
    "{a: 1}",
    "\"\\u0000\"",
    "&x a",
    "*x",
    "!!binary AAAA",
    "!!str 1",
    "|",
    ">-",
    "Ü",
    "\"a\\tb\"",
    "/",
    "*.a.b",
    "a..b",
    "http://x",
    "1ms",
    "0s",
    "99999999h",
    "MUTUAL",
    "SIMPLE",
    "PASSTHROUGH",
    "301",
    "[::1]",
    "10.0.0.1",
    "x_y",
    "\"\\r\\n\"",
    "300000000000000000000",
    "- a",
    ": b",
    "? c",
    "'unterminated",
    "\"unterminated",
    "#",
];

const KEYS: &[&str] = &[
    "foo",
    "tls",
    "hosts",
    "port",
    "match",
    "route",
    "uri",
    "exact",
    "regex",
    "metadata",
    "spec",
    "kind",
    "apiVersion",
    "namespace",
    "name",
    "weight",
    "<<",
    "? k",
    "- item",
    "number",
    "mode",
    "credentialName",
    "servers",
    "http",
    "destination",
    "status",
];

/// One random edit of a manifest's lines.
#[derive(Debug, Clone)]
enum Edit {
    Drop(prop::sample::Index),
    Double(prop::sample::Index),
    Swap(prop::sample::Index, prop::sample::Index),
    Scalar(prop::sample::Index, String),
    Key(prop::sample::Index, usize, String, String),
    Indent(prop::sample::Index, bool),
    Splice(prop::sample::Index, prop::sample::Index, String),
    Cut(prop::sample::Index),
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(SCALARS).prop_map(str::to_owned),
        1 => "[ -~]{0,12}",
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    use prop::sample::Index;
    prop_oneof![
        1 => any::<Index>().prop_map(Edit::Drop),
        1 => any::<Index>().prop_map(Edit::Double),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        4 => (any::<Index>(), scalar()).prop_map(|(i, s)| Edit::Scalar(i, s)),
        2 => (any::<Index>(), 0usize..8, prop::sample::select(KEYS), scalar())
            .prop_map(|(i, n, k, v)| Edit::Key(i, n, k.to_owned(), v)),
        1 => (any::<Index>(), any::<bool>()).prop_map(|(i, more)| Edit::Indent(i, more)),
        1 => (any::<Index>(), any::<Index>(), "\\PC{0,8}").prop_map(|(i, at, s)| Edit::Splice(i, at, s)),
        1 => any::<Index>().prop_map(Edit::Cut),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for e in edits {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match e {
            Edit::Drop(i) => {
                lines.remove(i.index(n));
            }
            Edit::Double(i) => {
                let l = lines[i.index(n)].clone();
                lines.insert(i.index(n), l);
            }
            Edit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            Edit::Scalar(i, s) => {
                let l = &mut lines[i.index(n)];
                if let Some(at) = l.find(": ").or_else(|| l.find("- ")) {
                    l.replace_range(at + 2.., s);
                }
            }
            Edit::Key(i, indent, k, v) => {
                lines.insert(i.index(n), format!("{}{k}: {v}", " ".repeat(*indent)));
            }
            Edit::Indent(i, more) => {
                let l = &mut lines[i.index(n)];
                if *more {
                    l.insert_str(0, "  ");
                } else if let Some(rest) = l.strip_prefix("  ") {
                    *l = rest.to_owned();
                }
            }
            Edit::Splice(i, at, s) => {
                let l = &mut lines[i.index(n)];
                let at = at.index(l.len() + 1);
                let at = (0..=at).rev().find(|k| l.is_char_boundary(*k));
                l.insert_str(at.unwrap_or(0), s);
            }
            Edit::Cut(i) => lines.truncate(i.index(n) + 1),
        }
    }
    lines.join("\n")
}

fn policy() -> impl Strategy<Value = NamespacePolicy> {
    (
        prop::sample::select(vec!["default", "ux", "Bad_NS"]),
        any::<bool>(),
    )
        .prop_map(|(ns, explicit)| NamespacePolicy {
            namespace: ns.to_owned(),
            explicit,
        })
}

/// Loads `text` as `walk.yaml`: what loads is valid, what is refused is
/// refused with one-line errors that name the file.
fn check_load(text: String, ns: &NamespacePolicy) -> Result<(), TestCaseError> {
    let src = Source {
        name: "walk.yaml".into(),
        text,
    };
    match parse_source(&src, ns) {
        Ok(loaded) => {
            prop_assert!(!loaded.is_empty());
            for l in &loaded {
                prop_assert_eq!(&l.file, "walk.yaml");
                prop_assert!(validate::check(&l.resource).is_ok(), "{:?}", l.resource);
            }
        }
        Err(errors) => {
            prop_assert!(!errors.is_empty());
            for e in &errors {
                let shown = e.to_string();
                prop_assert_eq!(&e.file, "walk.yaml");
                prop_assert!(shown.starts_with("walk.yaml: "), "{}", shown);
                prop_assert!(!shown.chars().any(char::is_control), "{:?}", shown);
                prop_assert!(!e.message.is_empty(), "{}", shown);
            }
        }
    }
    Ok(())
}

#[test]
fn the_unedited_manifests_load() {
    let ns = NamespacePolicy {
        namespace: "default".into(),
        explicit: false,
    };
    for text in [WALKTHROUGH, RICH] {
        let src = Source {
            name: "walk.yaml".into(),
            text: text.into(),
        };
        let loaded = parse_source(&src, &ns);
        assert!(loaded.as_ref().is_ok_and(|l| !l.is_empty()), "{loaded:?}");
    }
}

proptest! {
    #[test]
    fn prop_yaml_edited_manifests_load_or_name_the_file(
        base in prop::sample::select(vec![WALKTHROUGH, RICH]),
        edits in prop::collection::vec(edit(), 1..5),
        ns in policy(),
    ) {
        check_load(apply(base, &edits), &ns)?;
    }

    #[test]
    fn prop_yaml_arbitrary_text_loads_or_names_the_file(
        text in prop_oneof![
            any::<String>(),
            "[-:{}\\[\\],'\"&*!|>#? \n\ta-z0-9]{0,80}",
            prop::collection::vec(any::<u8>(), 0..80)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ],
        ns in policy(),
    ) {
        check_load(text, &ns)?;
    }
}

/// Nesting deep enough to overflow a recursive parser's stack, and an
/// alias "billion laughs": an error or a value, in bounded time, never a
/// crash.
#[test]
fn deep_nesting_and_alias_bombs_are_answered() {
    let ns = NamespacePolicy {
        namespace: "default".into(),
        explicit: false,
    };
    let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        let refs = vec![format!("*{prev}"); 10].join(", ");
        laughs.push_str(&format!("{next}: &{next} [{refs}]\n"));
    }
    for text in [
        "a: ".to_owned() + &"[".repeat(100_000),
        "a: ".to_owned() + &"{b: ".repeat(100_000),
        "- ".repeat(20_000),
        laughs,
    ] {
        let src = Source {
            name: "deep.yaml".into(),
            text,
        };
        let errors = parse_source(&src, &ns).err().unwrap_or_default();
        assert!(!errors.is_empty());
        assert!(errors.iter().all(|e| e.file == "deep.yaml"));
    }
}
