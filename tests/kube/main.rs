//! Kubernetes, against a real kube-apiserver (`../shared/k8s/apiserver.sh`,
//! driven by `support::kube`): the walkthrough with kubectl and `--store
//! kube` replicas (rotation, API server outages), the manifests of `deploy/kubernetes/` and
//! their least-privilege RBAC, and the harness's own stop, restart and
//! compaction. Each test starts its own API server and etcd.
//!
//! Run one module with `cargo test --test kube manifests::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod apiserver;
mod kube_cli;
mod kube_gateway_api;
mod kube_gateway_api_examples;
mod kube_rbac;
mod kube_scale;
mod kube_walkthrough;
mod manifests;
mod site;
