//! ReferenceGrant checks: a reference from one namespace to an object in
//! another is allowed only when a ReferenceGrant in the target's namespace
//! names the referring kind and namespace, and the target's kind (and name,
//! if it names one). Pure.

use super::super::types::ReferenceGrant;

/// Who refers: `(group, kind, namespace)`.
pub(crate) struct From<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// What is referred to: `(group, kind, namespace, name)`.
pub(crate) struct To<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Whether `from` may refer to `to`: always in its own namespace, else
/// only by a grant in `to`'s namespace.
pub(crate) fn permitted(grants: &[&ReferenceGrant], from: &From<'_>, to: &To<'_>) -> bool {
    if from.namespace == to.namespace {
        return true;
    }
    grants
        .iter()
        .filter(|g| g.metadata.ns() == to.namespace)
        .any(|g| {
            g.spec.from.iter().any(|f| {
                f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
            }) && g.spec.to.iter().any(|t| {
                t.group == to.group
                    && t.kind == to.kind
                    && t.name.as_deref().is_none_or(|n| n == to.name)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::gateway_api::types::{GrantFrom, GrantTo, ReferenceGrantSpec};

    fn grant(ns: &str, from_ns: &str, to_name: Option<&str>) -> ReferenceGrant {
        ReferenceGrant {
            api_version: "gateway.networking.k8s.io/v1beta1".into(),
            kind: "ReferenceGrant".into(),
            metadata: crate::config::ObjectMeta {
                name: "g".into(),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: ReferenceGrantSpec {
                from: vec![GrantFrom {
                    group: "gateway.networking.k8s.io".into(),
                    kind: "HTTPRoute".into(),
                    namespace: from_ns.into(),
                }],
                to: vec![GrantTo {
                    group: String::new(),
                    kind: "Service".into(),
                    name: to_name.map(str::to_owned),
                }],
            },
        }
    }

    #[test]
    fn grants_by_namespace_kind_and_name() {
        let from = From {
            group: "gateway.networking.k8s.io",
            kind: "HTTPRoute",
            namespace: "site",
        };
        let to = |ns, name| To {
            group: "",
            kind: "Service",
            namespace: ns,
            name,
        };
        assert!(permitted(&[], &from, &to("site", "a")), "same namespace");
        assert!(!permitted(&[], &from, &to("store", "a")), "no grant");
        let any = grant("store", "site", None);
        assert!(permitted(&[&any], &from, &to("store", "a")));
        let wrong_place = grant("site", "site", None);
        assert!(
            !permitted(&[&wrong_place], &from, &to("store", "a")),
            "the grant must be in the target's namespace"
        );
        let named = grant("store", "site", Some("b"));
        assert!(!permitted(&[&named], &from, &to("store", "a")));
        assert!(permitted(&[&named], &from, &to("store", "b")));
        let other_ns = grant("store", "elsewhere", None);
        assert!(!permitted(&[&other_ns], &from, &to("store", "a")));
        let secret = To {
            kind: "Secret",
            ..to("store", "a")
        };
        assert!(
            !permitted(&[&any], &from, &secret),
            "granted for Services only"
        );
    }
}
