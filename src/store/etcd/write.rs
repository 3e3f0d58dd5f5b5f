//! Writes: an apply is one optimistic transaction (read, decide, commit
//! only if nothing moved), a delete is one transaction of deletes.
//!
//! A write must never be sent twice (an answer lost on the way back would
//! make the second one ambiguous), and an apply must never half-apply.

use std::collections::HashSet;

use etcd_rpc::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcd_rpc::etcdserverpb::request_op::Request;
use etcd_rpc::etcdserverpb::response_op::Response;
use etcd_rpc::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, TxnResponse,
};

use super::EtcdStore;
use super::client::{Member, range, timed};
use crate::store::{ObjectKey, Outcome, Put, StoreError};

/// The outcome and resource version of each put, in order.
type Applied = Vec<(ObjectKey, Outcome, u64)>;

/// What one key holds now: its mod revision and plain value.
type Current = Option<(i64, Vec<u8>)>;

fn rev(r: i64) -> u64 {
    u64::try_from(r).unwrap_or(0)
}

fn op(request: Request) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

fn compare(key: &[u8], target: CompareTarget, value: TargetUnion) -> Compare {
    Compare {
        result: CompareResult::Equal.into(),
        target: target.into(),
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(value),
    }
}

/// The transaction of one apply attempt: its compares, its puts, and the
/// outcome per put (`Unchanged` ones carry their version already).
struct Plan {
    compares: Vec<Compare>,
    ops: Vec<RequestOp>,
    outcomes: Vec<(Outcome, u64)>,
}

impl EtcdStore {
    pub async fn apply(&self, puts: Vec<Put>) -> Result<Applied, StoreError> {
        let mut seen = HashSet::new();
        let mut keys = Vec::with_capacity(puts.len());
        for p in &puts {
            if !seen.insert(p.key.clone()) {
                return Err(StoreError::DuplicateKey { key: p.key.clone() });
            }
            keys.push(self.key_bytes(&p.key)?);
        }
        // Optimistic: read, decide, then commit only if nothing moved. The
        // read finds a member that answers; the commit goes to the same
        // one and is never sent twice (a lost answer would be ambiguous).
        for _attempt in 0..8 {
            let (member, current) = self.read_current(&keys).await?;
            check_versions(&puts, &current)?;
            let plan = self.plan(&puts, &keys, &current)?;
            if plan.ops.is_empty() {
                return Ok(applied(&puts, plan.outcomes, 0));
            }
            let txn = TxnRequest {
                compare: plan.compares,
                success: plan.ops,
                failure: Vec::new(),
            };
            let resp = timed("transaction", member.kv().txn(txn)).await?;
            if resp.succeeded {
                let revision = resp.header.map_or(0, |h| rev(h.revision));
                return Ok(applied(&puts, plan.outcomes, revision));
            }
            // Someone changed one of the keys between our read and commit:
            // read again; a put with a precondition will now report Conflict.
        }
        Err(StoreError::Unavailable(
            "etcd: the objects kept changing during this apply; try again".into(),
        ))
    }

    /// Reads every key in one transaction on a member that answers.
    async fn read_current(&self, keys: &[Vec<u8>]) -> Result<(Member, Vec<Current>), StoreError> {
        let (member, read) = self
            .kv_read(|m| {
                let txn = TxnRequest {
                    success: keys
                        .iter()
                        .map(|k| op(Request::RequestRange(range(k.clone()))))
                        .collect(),
                    ..TxnRequest::default()
                };
                async move { timed("read", m.kv().txn(txn)).await }
            })
            .await?;
        let current = read
            .responses
            .into_iter()
            .zip(keys)
            .map(|(r, k)| match r.response {
                Some(Response::ResponseRange(g)) => g.kvs.first().map(|kv| {
                    let plain = self.unseal(k, &kv.value).unwrap_or_default();
                    (kv.mod_revision, plain)
                }),
                _ => None,
            })
            .collect();
        Ok((member, current))
    }

    fn plan(
        &self,
        puts: &[Put],
        keys: &[Vec<u8>],
        current: &[Current],
    ) -> Result<Plan, StoreError> {
        let mut plan = Plan {
            compares: Vec::new(),
            ops: Vec::new(),
            outcomes: Vec::new(),
        };
        for ((p, c), k) in puts.iter().zip(current).zip(keys) {
            match c {
                Some((r, value)) => {
                    let at = TargetUnion::ModRevision(*r);
                    plan.compares.push(compare(k, CompareTarget::Mod, at));
                    if *value == p.value {
                        plan.outcomes.push((Outcome::Unchanged, rev(*r)));
                        continue;
                    }
                    plan.outcomes.push((Outcome::Configured, 0));
                }
                None => {
                    let absent = TargetUnion::Version(0);
                    plan.compares
                        .push(compare(k, CompareTarget::Version, absent));
                    plan.outcomes.push((Outcome::Created, 0));
                }
            }
            plan.ops.push(op(Request::RequestPut(PutRequest {
                key: k.clone(),
                value: self.seal(&p.key, k, &p.value)?,
                ..PutRequest::default()
            })));
        }
        Ok(plan)
    }

    pub async fn delete(&self, keys: Vec<ObjectKey>) -> Result<Vec<bool>, StoreError> {
        let raw: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| self.key_bytes(k))
            .collect::<Result<_, _>>()?;
        // Finding a member that answers writes nothing; the delete itself
        // is sent once.
        let (member, ()) = self
            .kv_read(|m| {
                let mut probe = range(self.opts.prefix.clone().into_bytes());
                probe.keys_only = true;
                probe.limit = 1;
                async move {
                    timed("status", m.kv().range(probe)).await?;
                    Ok(())
                }
            })
            .await?;
        let txn = TxnRequest {
            success: raw
                .into_iter()
                .map(|key| {
                    op(Request::RequestDeleteRange(DeleteRangeRequest {
                        key,
                        ..DeleteRangeRequest::default()
                    }))
                })
                .collect(),
            ..TxnRequest::default()
        };
        let resp: TxnResponse = timed("delete", member.kv().txn(txn)).await?;
        Ok(resp
            .responses
            .into_iter()
            .map(|r| matches!(r.response, Some(Response::ResponseDeleteRange(d)) if d.deleted > 0))
            .collect())
    }
}

fn check_versions(puts: &[Put], current: &[Current]) -> Result<(), StoreError> {
    for (p, c) in puts.iter().zip(current) {
        let actual = c.as_ref().map_or(0, |(r, _)| rev(*r));
        if let Some(expected) = p.expected_version
            && expected != actual
        {
            return Err(StoreError::Conflict {
                key: p.key.clone(),
                expected,
                actual,
            });
        }
    }
    Ok(())
}

/// The result of an apply whose changes got `revision`.
fn applied(puts: &[Put], outcomes: Vec<(Outcome, u64)>, revision: u64) -> Applied {
    puts.iter()
        .zip(outcomes)
        .map(|(p, (o, r))| {
            let version = if o == Outcome::Unchanged { r } else { revision };
            (p.key.clone(), o, version)
        })
        .collect()
}
