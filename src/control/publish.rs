//! Publishing a turn of the control loop: refresh credentials (SDS),
//! compile or patch the snapshot and swap it in, bind the listeners it
//! names, look at serving certificates' dates (`expiry.rs`), then tell the
//! admin endpoint and the local cache.
//!
//! The data plane only ever sees whole snapshots: nothing here may change
//! one after it is stored.

use std::sync::Arc;

use super::objects::{build_model, secrets_in};
use super::{Loop, Source, Status, cache};
use crate::secret::sds::{ResourceKind, SecretVersion, cacert_name};
use crate::snapshot::{self, Snapshot};
use crate::store::ObjectKey;

impl Loop {
    /// Publishes a new snapshot if anything changed since the last one.
    pub(super) fn publish(&mut self) {
        self.version += 1;
        let snap = match self.published.clone() {
            Some(prev) if !self.structural => self.refresh_credentials(prev),
            _ => self.compile(),
        };
        self.published = Some(snap);
        self.shared.metrics.config_applied();
        self.check_expiry();
        // The Gateway API's conditions, for a store that keeps status.
        self.store
            .publish_status(self.state.gateway_api.status.all());
    }

    /// The admin view's rows of the credentials `changed` names, read
    /// again from SDS (a credential's row and its client CA's).
    pub(super) fn refresh_rows<'a>(&mut self, changed: impl IntoIterator<Item = &'a String>) {
        let mut any = false;
        for name in changed {
            any = true;
            self.row_map
                .remove(&(ResourceKind::KeyCertPair, name.clone()));
            self.row_map
                .remove(&(ResourceKind::RootCert, cacert_name(name)));
            for row in self.sds.rows_of(name) {
                self.row_map
                    .insert((row.kind, row.resource.clone()), Arc::new(row));
            }
        }
        if any {
            self.rows = Arc::new(self.row_map.values().cloned().collect());
        }
    }

    /// Only secrets changed: rebuild the servers whose credentials they
    /// feed and share the rest of `prev`.
    fn refresh_credentials(&mut self, prev: Arc<Snapshot>) -> Arc<Snapshot> {
        let (files, state, namespace) = (&self.files, &self.state, &self.opts.namespace);
        let lookup = |name: &str| {
            files
                .get(name)
                .cloned()
                .or_else(|| {
                    let key = ObjectKey::new("Secret", namespace.as_str(), name);
                    state.secrets.get(&key).map(|(rv, s)| SecretVersion {
                        resource_version: *rv,
                        secret: s.clone(),
                    })
                })
                .or_else(|| {
                    let (rv, s) = state.gateway_api.secrets.get(name)?;
                    Some(SecretVersion {
                        resource_version: *rv,
                        secret: s.clone(),
                    })
                })
        };
        let t0 = std::time::Instant::now();
        let changed = self
            .sds
            .refresh_changed(&lookup, &self.wanted, &self.changed_secrets);
        self.changed_secrets.clear();
        tracing::debug!(refresh_us = t0.elapsed().as_micros() as u64, "refresh");
        if changed.is_empty() {
            return prev;
        }
        let snap = Arc::new(snapshot::with_credentials(
            &prev,
            &changed,
            &self.sds,
            &mut self.compiler,
            self.version,
        ));
        self.shared.snapshot.store(snap.clone());
        tracing::debug!(published_us = t0.elapsed().as_micros() as u64, "published");
        self.refresh_rows(&changed);
        snap
    }

    /// Anything but secrets changed: compile the whole model again (reusing
    /// every TLS config whose inputs did not change) and bind listeners.
    fn compile(&mut self) -> Arc<Snapshot> {
        self.state.translate_gateway_api();
        let model = build_model(&self.state, &self.opts);
        self.files.set_gateways(&model.gateway_sources);
        self.warnings = crate::admin::warnings::collect(
            self.state.parsed.values().map(|(rv, r, _)| (*rv, r)),
            &model.gateway_sources,
        );
        self.files.poll();
        self.changed_secrets.clear();
        self.wanted = snapshot::wanted_credentials(&model.gateways);
        crate::secret::upstream::want(&model.destination_rules, &mut self.wanted);
        let mut secrets = secrets_in(&self.state, &self.opts.namespace);
        secrets.extend(self.files.secrets().map(|(k, v)| (k.clone(), v.clone())));
        secrets.extend(self.state.gateway_api.secrets.iter().map(|(k, (rv, s))| {
            let v = SecretVersion {
                resource_version: *rv,
                secret: s.clone(),
            };
            (k.clone(), v)
        }));
        self.sds.refresh(&secrets, &self.wanted);
        let snap = Arc::new(snapshot::compile(
            &model,
            &self.sds,
            &mut self.compiler,
            self.version,
        ));
        self.shared.snapshot.store(snap.clone());
        self.row_map = self
            .sds
            .rows()
            .into_iter()
            .map(|r| ((r.kind, r.resource.clone()), Arc::new(r)))
            .collect();
        self.rows = Arc::new(self.row_map.values().cloned().collect());
        self.listeners.reconcile(&snap, &self.opts, &self.shared);
        self.structural = false;
        snap
    }

    /// Tells the admin endpoint what is served now.
    pub(super) fn report(&mut self) {
        let listener_errors = self.listeners.failures();
        self.status.store(Arc::new(Status {
            ready: self.source != Source::Starting && listener_errors.is_empty(),
            snapshot_version: self.version,
            credentials: self.rows.clone(),
            listeners: self.listeners.running(),
            listener_errors,
            source: self.source,
            warnings: self.warnings.clone(),
            snapshot: self.published.clone(),
            objects: self.state.held(),
            sds_events: self.sds.events.view(),
        }));
    }

    /// Writes the local cache once per store revision while in sync.
    pub(super) fn save_cache(&mut self) {
        let Some(path) = &self.opts.cache else {
            return;
        };
        if self.source != Source::Live || self.cached_revision == Some(self.revision) {
            return;
        }
        match cache::save(
            path,
            self.opts.cache_keyring.as_deref(),
            self.revision,
            self.state.good_objects().iter(),
        ) {
            Ok(()) => self.cached_revision = Some(self.revision),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the local cache")
            }
        }
    }
}
