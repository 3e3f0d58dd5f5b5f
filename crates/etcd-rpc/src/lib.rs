//! The etcd v3 API as gatehouse's etcd store speaks it: the protobuf
//! messages and tonic client stubs of the `KV` (`Range`, `Put`,
//! `DeleteRange`, `Txn`), `Watch` and `Auth` (`Authenticate`) services.
//!
//! The code under `src/generated/` is **generated**: prost and tonic's
//! output for etcd's `rpc.proto` and `kv.proto`, trimmed to those RPCs and
//! the messages they reach. It is committed so that building gatehouse
//! needs no `protoc`. Do not edit it by hand: change the RPC list in
//! `gen/src/main.rs` and run `scripts/gen-etcd-rpc.sh`, which takes the
//! .proto files from the etcd-client crate package (0.21.1, etcd 3.6's
//! API) and is the only step that needs `protoc`.
//!
//! This crate must never hold hand-written logic (retries, failover,
//! auth): that lives in gatehouse's `store::etcd`, which is reviewed code.

// Generated code: its docs come from the .proto comments and its shapes
// from prost; neither is ours to lint.
#![allow(clippy::all, clippy::pedantic, rustdoc::all, missing_docs)]

/// `etcdserverpb`: requests, responses and the KV, Watch and Auth clients.
pub mod etcdserverpb {
    include!("generated/etcdserverpb.rs");
}

/// `mvccpb`: the stored key-value and the watch event.
pub mod mvccpb {
    include!("generated/mvccpb.rs");
}
