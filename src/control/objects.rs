//! The last good parse of every object the store holds, and the model the
//! snapshot compiler reads from them.
//!
//! A bad version of an object is logged and never replaces the good one.
//! It must never reach the store: this is a read-only copy.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::RunOptions;
use crate::config::checked::Checked;
use crate::config::{Kind, Resource, validate};
use crate::secret::sds::SecretVersion;
use crate::snapshot::{self, Model};
use crate::store::{Object, ObjectKey};

/// Last good parse of every object, by key.
#[derive(Default)]
pub(super) struct Objects {
    /// The resource version of every object in the store, valid or not.
    pub(super) versions: BTreeMap<ObjectKey, u64>,
    /// Last good parse of every object but Secrets, as stored and checked.
    pub(super) parsed: HashMap<ObjectKey, (u64, Resource, Checked)>,
    /// Last good parse of every Secret, shared so SDS gets it without a copy.
    pub(super) secrets: HashMap<ObjectKey, (u64, Arc<crate::config::Secret>)>,
    /// Why the store's version of an object was refused, while it is.
    pub(super) skipped: HashMap<ObjectKey, String>,
    /// The admin view of each object, kept up to date one object at a
    /// time: a rotation among 10,000 hosts rebuilds one row, not all.
    rows: BTreeMap<ObjectKey, Arc<HeldObject>>,
    /// All the rows, collected again only after a change.
    held: Option<Arc<Vec<Arc<HeldObject>>>>,
    /// What the Gateway API objects serve, translated on each compile.
    pub(super) gateway_api: crate::config::gateway_api::translate::Translated,
}

impl Objects {
    pub(super) fn upsert(&mut self, o: Object) {
        let kind = Kind::from_kind(&o.key.kind);
        let parsed = kind
            .ok_or_else(|| format!("unknown kind {}", o.key.kind))
            .and_then(|k| {
                let r = Resource::from_json(k, &o.value).map_err(|e| e.to_string())?;
                match validate::check(&r) {
                    Err(errs) => Err(errs
                        .0
                        .first()
                        .map(|(p, m)| format!("{p}: {m}"))
                        .unwrap_or_default()),
                    Ok(c) => Ok((r, c)),
                }
            });
        self.held = None;
        self.skipped.remove(&o.key);
        match parsed {
            Ok((Resource::Secret(secret), _)) => {
                self.secrets
                    .insert(o.key.clone(), (o.resource_version, Arc::new(secret)));
            }
            Ok((r, c)) => {
                self.parsed
                    .insert(o.key.clone(), (o.resource_version, r, c));
            }
            Err(e) => {
                tracing::error!(object = %o.key, error = %e, "refused an invalid object from the store; the last good version keeps serving");
                self.skipped.insert(o.key.clone(), e);
            }
        }
        self.versions.insert(o.key.clone(), o.resource_version);
        self.refresh_row(&o.key);
    }

    /// The admin view's row of `key`, as the maps hold it now.
    fn refresh_row(&mut self, key: &ObjectKey) {
        let Some(rv) = self.versions.get(key) else {
            self.rows.remove(key);
            return;
        };
        let serving = self
            .parsed
            .get(key)
            .map(|(v, ..)| *v)
            .or_else(|| self.secrets.get(key).map(|(v, _)| *v));
        let row = HeldObject {
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            resource_version: *rv,
            serving_version: serving,
            skipped: self.skipped.get(key).cloned(),
        };
        self.rows.insert(key.clone(), Arc::new(row));
    }

    /// Translates the Gateway API objects again (before a compile).
    pub(super) fn translate_gateway_api(&mut self) {
        let objects: Vec<_> = self
            .parsed
            .values()
            .filter_map(|(rv, r, _)| match r {
                Resource::GatewayApi(o) => Some((*rv, o.as_ref())),
                _ => None,
            })
            .collect();
        let secrets = &self.secrets;
        let lookup = |ns: &str, name: &str| {
            secrets
                .get(&ObjectKey::new("Secret", ns, name))
                .map(|(rv, s)| (*rv, s.clone()))
        };
        self.gateway_api = crate::config::gateway_api::translate::translate(&objects, &lookup);
    }

    /// Whether the last compile served Gateway API Gateways: then a Secret
    /// change compiles again (a listener may name a Secret of any
    /// namespace, under its own credential name).
    pub(super) fn has_gateway_api(&self) -> bool {
        !self.gateway_api.status.gateways.is_empty()
    }

    /// Replaces everything with a fresh listing, keeping the last good parse
    /// of objects whose new version is invalid.
    pub(super) fn replace_all(&mut self, objects: Vec<Object>) {
        let keep: std::collections::HashSet<ObjectKey> =
            objects.iter().map(|o| o.key.clone()).collect();
        self.versions.retain(|k, _| keep.contains(k));
        self.parsed.retain(|k, _| keep.contains(k));
        self.secrets.retain(|k, _| keep.contains(k));
        self.skipped.retain(|k, _| keep.contains(k));
        self.rows.retain(|k, _| keep.contains(k));
        self.held = None;
        for o in objects {
            if self.versions.get(&o.key) != Some(&o.resource_version) {
                self.upsert(o);
            }
        }
    }

    /// The last good objects as the store holds them, for the local cache.
    pub(super) fn good_objects(&self) -> Vec<Object> {
        let parsed = self.parsed.iter().filter_map(|(k, (rv, r, _))| {
            r.to_json().ok().map(|value| Object {
                key: k.clone(),
                resource_version: *rv,
                value,
            })
        });
        let secrets = self.secrets.iter().filter_map(|(k, (rv, s))| {
            serde_json::to_vec(s.as_ref()).ok().map(|value| Object {
                key: k.clone(),
                resource_version: *rv,
                value,
            })
        });
        parsed.chain(secrets).collect()
    }

    pub(super) fn remove(&mut self, key: &ObjectKey) {
        self.held = None;
        self.skipped.remove(key);
        self.versions.remove(key);
        self.parsed.remove(key);
        self.secrets.remove(key);
        self.rows.remove(key);
    }

    /// Every object of the store as the gateway holds it: applied, or
    /// skipped with the reason (and the version still served, if any).
    /// Collected again only after the objects changed.
    pub(super) fn held(&mut self) -> Arc<Vec<Arc<HeldObject>>> {
        if let Some(h) = &self.held {
            return h.clone();
        }
        let rows = Arc::new(self.rows.values().cloned().collect::<Vec<_>>());
        self.held = Some(rows.clone());
        rows
    }
}

/// One object of the store as the running gateway holds it (for
/// `/config_dump` and `proxy-status`). Never any of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The store's version of it that the gateway has seen.
    pub resource_version: u64,
    /// The version it serves: the same unless that one was skipped, then
    /// the last good one (`None`: none was ever good).
    pub serving_version: Option<u64>,
    /// Why `resource_version` was refused.
    pub skipped: Option<String>,
}

pub(super) fn build_model<'a>(state: &'a Objects, opts: &RunOptions) -> Model<'a> {
    let mut model = Model {
        labels: opts.labels.clone(),
        ..Model::default()
    };
    for (_, r, c) in state.parsed.values() {
        match (r, c) {
            (Resource::Gateway(raw), Checked::Gateway(g)) if snapshot::selects(g, &opts.labels) => {
                model.gateways.push(g);
                model.gateway_sources.push(raw);
            }
            (_, Checked::VirtualService(v)) => model.virtual_services.push(v),
            (_, Checked::ServiceEntry(s)) => model.service_entries.push(s),
            (_, Checked::DestinationRule(d)) => model.destination_rules.push(d),
            (_, Checked::Service(s)) => model.services.push(s),
            (_, Checked::EndpointSlice(s)) => model.endpoint_slices.push(s),
            _ => {}
        }
    }
    let translated = &state.gateway_api;
    model.gateways.extend(
        translated
            .gateways
            .iter()
            .filter(|g| snapshot::selects(g, &opts.labels)),
    );
    model
        .virtual_services
        .extend(translated.virtual_services.iter());
    model
        .gateways
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    model.gateway_sources.sort_by(|a, b| {
        (a.metadata.ns(), &a.metadata.name).cmp(&(b.metadata.ns(), &b.metadata.name))
    });
    model.virtual_services.sort_by(|a, b| {
        (&a.creation_timestamp, &a.namespace, &a.name).cmp(&(
            &b.creation_timestamp,
            &b.namespace,
            &b.name,
        ))
    });
    model
        .service_entries
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    model.destination_rules.sort_by(|a, b| {
        (&a.creation_timestamp, &a.namespace, &a.name).cmp(&(
            &b.creation_timestamp,
            &b.namespace,
            &b.name,
        ))
    });
    model
}

pub(super) fn secrets_in(state: &Objects, namespace: &str) -> BTreeMap<String, SecretVersion> {
    state
        .secrets
        .iter()
        .filter(|(k, _)| k.namespace == namespace)
        .map(|(k, (rv, s))| {
            (
                k.name.clone(),
                SecretVersion {
                    resource_version: *rv,
                    secret: s.clone(),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(rv: u64, uri: &str) -> Object {
        let value = format!(
            r#"{{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{{"name":"v","namespace":"default"}},
            "spec":{{"hosts":["a.com"],"http":[{{"match":[{{"uri":{uri}}}],"route":[{{"destination":{{"host":"b"}}}}]}}]}}}}"#
        );
        Object {
            key: ObjectKey::new("VirtualService", "default", "v"),
            resource_version: rv,
            value: value.into_bytes(),
        }
    }

    #[test]
    fn a_bad_version_is_held_as_skipped_until_a_good_one() {
        let mut o = Objects::default();
        o.upsert(vs(3, r#"{"exact":"/"}"#));
        let first = o.held();
        assert_eq!(first[0].skipped, None);
        assert_eq!(first[0].serving_version, Some(3));
        assert!(Arc::ptr_eq(&first, &o.held()), "rebuilt without a change");
        o.upsert(vs(5, r#"{"regex":"("}"#));
        let bad = o.held();
        assert_eq!(
            (bad[0].resource_version, bad[0].serving_version),
            (5, Some(3))
        );
        assert!(
            bad[0].skipped.as_deref().unwrap().contains("regex"),
            "{bad:?}"
        );
        o.upsert(vs(6, r#"{"prefix":"/"}"#));
        let good = o.held();
        assert_eq!(
            (
                good[0].resource_version,
                good[0].serving_version,
                &good[0].skipped
            ),
            (6, Some(6), &None)
        );
        o.remove(&ObjectKey::new("VirtualService", "default", "v"));
        assert!(o.held().is_empty());
    }
}
