//! `GET /warnings`: what the running gateway holds but does not serve as
//! written: the fields it accepts and does not apply (`IgnoredField`), and
//! the Gateway servers another server wins over (`ConflictingGateways`).
//!
//! The list is computed by the control loop when the objects change (never
//! per request) from the same pure functions `apply` warns with, so the
//! admin view and the CLI say the same thing. It never shows Secret data.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::config::conflicts;
use crate::config::gateway::Gateway;
use crate::config::{Resource, ignored};
use crate::control::Status;

/// One warning about one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// The field (or server) the warning is about.
    pub path: String,
    /// `IgnoredField` or `ConflictingGateways`.
    pub reason: &'static str,
    /// The text after `Warning: ` that `apply` prints.
    pub line: String,
}

/// The warnings for `objects` (every object the gateway holds, as the
/// control loop keeps them: with their resource version) and for `served`
/// (the Gateways its labels select, whose servers may conflict), sorted by
/// object and path.
pub fn collect<'a>(
    objects: impl IntoIterator<Item = (u64, &'a Resource)>,
    served: &[&Gateway],
) -> Arc<Vec<Warning>> {
    let mut out: Vec<Warning> = objects
        .into_iter()
        .flat_map(|(_, r)| ignored::fields(r))
        .map(|i| Warning {
            kind: i.kind.as_str(),
            line: i.to_string(),
            namespace: i.namespace,
            name: i.name,
            path: i.path,
            reason: "IgnoredField",
        })
        .collect();
    out.extend(conflicts::conflicts(served).into_iter().map(|c| {
        let loser = c.loser();
        Warning {
            kind: "Gateway",
            namespace: loser.namespace.clone(),
            name: loser.gateway.clone(),
            path: format!("spec.servers[{}]", loser.index),
            reason: "ConflictingGateways",
            line: c.to_string(),
        }
    }));
    out.sort();
    Arc::new(out)
}

/// The JSON of `/warnings`.
pub fn json(status: &Status) -> Value {
    let rows: Vec<Value> = status
        .warnings
        .iter()
        .map(|w| {
            json!({
                "kind": w.kind,
                "namespace": w.namespace,
                "name": w.name,
                "path": w.path,
                "reason": w.reason,
                "warning": w.line,
            })
        })
        .collect();
    json!({ "snapshot": status.snapshot_version, "warnings": rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Kind;

    fn resource(kind: Kind, json: &str) -> (u64, Resource) {
        (1, Resource::from_json(kind, json.as_bytes()).unwrap())
    }

    fn gateway(name: &str) -> (u64, Resource) {
        resource(
            Kind::Gateway,
            &format!(
                r#"{{"apiVersion":"networking.istio.io/v1","kind":"Gateway","metadata":{{"name":"{name}"}},
                "spec":{{"servers":[{{"port":{{"number":80,"name":"http","protocol":"HTTP"}},"hosts":["a.com"]}}]}}}}"#
            ),
        )
    }

    #[test]
    fn ignored_fields_and_conflicts_sorted_by_object() {
        let vs = resource(
            Kind::VirtualService,
            r#"{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"v"},
            "spec":{"hosts":["a.com"],"exportTo":["."],"http":[{"route":[{"destination":{"host":"b"}}]}]}}"#,
        );
        let (b, a) = (gateway("b"), gateway("a"));
        let served: Vec<&Gateway> = [&b, &a]
            .into_iter()
            .filter_map(|(_, r)| match r {
                Resource::Gateway(g) => Some(g),
                _ => None,
            })
            .collect();
        let got = collect([&vs, &b, &a].map(|(rv, r)| (*rv, r)), &served);
        let rows: Vec<(&str, &str, &str, &str)> = got
            .iter()
            .map(|w| (w.kind, w.name.as_str(), w.path.as_str(), w.reason))
            .collect();
        assert_eq!(
            rows,
            [
                ("Gateway", "b", "spec.servers[0]", "ConflictingGateways"),
                ("VirtualService", "v", "spec.exportTo", "IgnoredField"),
            ]
        );
        assert!(
            got[0]
                .line
                .starts_with("Gateway default/b: ConflictingGateways: ")
        );
        assert!(got[0].line.contains("Gateway default/a serves it"));
    }
}
