//! Status written back to the API server, by one replica at a time.
//!
//! The control loop hands over the `status` every Gateway API object
//! should have ([`StatusWriter::publish`], never blocking). A task keeps a
//! `coordination.k8s.io/v1` Lease (`gatehouse-status` in the gateway's
//! namespace): the replica holding it writes each status that differs
//! from what it last wrote (a merge patch of the `/status` subresource);
//! the others only keep trying to take the Lease when it expires, so two
//! replicas never fight over a status. Conditions get their
//! `lastTransitionTime` here: kept while a condition's status stays the
//! same, now when it changes.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::kinds;
use crate::store::ObjectKey;

/// The Lease's name in the gateway's namespace.
pub const LEASE_NAME: &str = "gatehouse-status";
/// How long a Lease holds without renewal.
const LEASE_SECONDS: i64 = 15;
/// How often the holder renews, and the others look.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// What every object's status should be.
pub type Desired = BTreeMap<ObjectKey, Value>;

/// The handle the control loop holds.
#[derive(Clone)]
pub struct StatusWriter {
    tx: watch::Sender<Desired>,
}

impl StatusWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(client: Client, namespace: String) -> StatusWriter {
        let (tx, rx) = watch::channel(Desired::new());
        tokio::spawn(run(client, namespace, identity(), rx));
        StatusWriter { tx }
    }

    /// The statuses to write; replaces the previous set.
    pub fn publish(&self, desired: Desired) {
        self.tx.send_if_modified(|d| {
            let changed = *d != desired;
            *d = desired;
            changed
        });
    }
}

/// This replica's name in the Lease: the pod's (`HOSTNAME`) and the pid.
fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

/// Now as a Kubernetes MicroTime: RFC 3339 in UTC with exactly six
/// fractional digits (the API server refuses any other count in a Lease).
fn now_text() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

fn lease_resource() -> ApiResource {
    ApiResource {
        group: "coordination.k8s.io".into(),
        version: "v1".into(),
        api_version: "coordination.k8s.io/v1".into(),
        kind: "Lease".into(),
        plural: "leases".into(),
    }
}

fn post() -> PostParams {
    PostParams {
        field_manager: Some(super::FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

/// Takes or renews the Lease; true while this replica holds it.
async fn lead(api: &Api<DynamicObject>, me: &str) -> Result<bool, kube::Error> {
    let now = now_text();
    let spec = |transitions: i64, acquired: &str| {
        json!({"holderIdentity": me, "leaseDurationSeconds": LEASE_SECONDS,
               "acquireTime": acquired, "renewTime": now, "leaseTransitions": transitions})
    };
    let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
        let mut obj = DynamicObject::new(LEASE_NAME, &lease_resource());
        obj.data = json!({"spec": spec(0, &now)});
        return match api.create(&post(), &obj).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let s = &lease.data["spec"];
    let holder = s["holderIdentity"].as_str().unwrap_or_default();
    let renewed = s["renewTime"].as_str().and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    });
    let duration = s["leaseDurationSeconds"].as_i64().unwrap_or(LEASE_SECONDS);
    let expired = renewed
        .is_none_or(|r| r + time::Duration::seconds(duration) < time::OffsetDateTime::now_utc());
    if holder != me && !expired {
        return Ok(false);
    }
    let transitions = s["leaseTransitions"].as_i64().unwrap_or(0) + i64::from(holder != me);
    let acquired = if holder == me {
        s["acquireTime"].as_str().unwrap_or(&now).to_owned()
    } else {
        now.clone()
    };
    lease.data["spec"] = spec(transitions, &acquired);
    // The resourceVersion read above makes this a compare-and-swap: of two
    // replicas taking an expired Lease, one gets 409.
    match api.replace(LEASE_NAME, &post(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// `desired` with each condition's `lastTransitionTime`: the one `before`
/// had for the same type and status, else now.
fn with_times(desired: &Value, before: Option<&Value>, now: &str) -> Value {
    let mut out = desired.clone();
    let old_conditions = |path: &[&str]| -> Vec<Value> {
        let mut v = before;
        for p in path {
            v = v.and_then(|x| x.get(*p));
        }
        v.and_then(Value::as_array).cloned().unwrap_or_default()
    };
    fn stamp(conds: &mut Value, old: &[Value], now: &str) {
        let Some(list) = conds.as_array_mut() else {
            return;
        };
        for c in list {
            let prev = old
                .iter()
                .find(|o| o["type"] == c["type"] && o["status"] == c["status"]);
            let t = prev
                .and_then(|p| p.get("lastTransitionTime"))
                .cloned()
                .unwrap_or_else(|| Value::String(now.to_owned()));
            if let Some(m) = c.as_object_mut() {
                m.insert("lastTransitionTime".into(), t);
            }
        }
    }
    if let Some(c) = out.get_mut("conditions") {
        stamp(c, &old_conditions(&["conditions"]), now);
    }
    for (list, key) in [("listeners", "name"), ("parents", "parentRef")] {
        let old: Vec<Value> = before
            .and_then(|b| b.get(list))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(items) = out.get_mut(list).and_then(Value::as_array_mut) {
            for item in items {
                let prev = old
                    .iter()
                    .find(|o| o[key] == item[key])
                    .and_then(|o| o.get("conditions"));
                let prev = prev.and_then(Value::as_array).cloned().unwrap_or_default();
                if let Some(c) = item.get_mut("conditions") {
                    stamp(c, &prev, now);
                }
            }
        }
    }
    out
}

async fn write_one(client: &Client, key: &ObjectKey, status: &Value) -> Result<(), kube::Error> {
    let Some(spec) = kinds::by_key(&key.kind) else {
        return Ok(());
    };
    let ar = spec.resource(spec.versions[0]);
    let api: Api<DynamicObject> = if key.namespace.is_empty() {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), &key.namespace, &ar)
    };
    let patch = json!({"status": status});
    let params = PatchParams {
        field_manager: Some(super::FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    match api
        .patch_status(&key.name, &params, &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing to write.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn run(client: Client, namespace: String, me: String, mut rx: watch::Receiver<Desired>) {
    let leases: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &namespace, &lease_resource());
    // What this replica wrote last, with its times; cleared when it loses the Lease.
    let mut written: BTreeMap<ObjectKey, Value> = BTreeMap::new();
    let mut leading = false;
    loop {
        match lead(&leases, &me).await {
            Ok(now_leading) => {
                if now_leading != leading {
                    tracing::info!(lease = LEASE_NAME, holder = %me, leading = now_leading, "status Lease");
                    written.clear();
                }
                leading = now_leading;
            }
            Err(e) => {
                tracing::warn!(lease = LEASE_NAME, error = %e, "cannot take or renew the status Lease");
                leading = false;
            }
        }
        if leading {
            let desired = rx.borrow_and_update().clone();
            let now = now_text();
            for (key, status) in &desired {
                let stamped = with_times(status, written.get(key), &now);
                if written.get(key) == Some(&stamped) {
                    continue;
                }
                match write_one(&client, key, &stamped).await {
                    Ok(()) => {
                        written.insert(key.clone(), stamped);
                    }
                    Err(e) => tracing::warn!(object = %key, error = %e, "writing status failed"),
                }
            }
            written.retain(|k, _| desired.contains_key(k));
        }
        tokio::select! {
            changed = rx.changed(), if leading => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(RENEW_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn micro_time_has_six_fractional_digits() {
        let t = super::now_text();
        let (_, frac) = t.split_once('.').unwrap_or_default();
        assert_eq!(frac.len(), 7, "{t}");
        assert!(frac.ends_with('Z'), "{t}");
        assert!(
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok(),
            "{t}"
        );
    }
}
