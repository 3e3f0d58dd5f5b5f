//! Generates the etcd v3 gRPC client code of `crates/etcd-rpc` from a
//! descriptor set that protoc made of etcd's `rpc.proto` (see
//! `scripts/gen-etcd-rpc.sh`), keeping only the RPCs gatehouse calls and
//! the messages they reach.
//!
//! It must never generate server code, or any RPC not in [`KEEP`]: every
//! extra line is build time for everyone and surface nobody reviews.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

/// `(service, methods)`: the RPCs gatehouse's etcd store uses.
const KEEP: &[(&str, &[&str])] = &[
    ("etcdserverpb.KV", &["Range", "Put", "DeleteRange", "Txn"]),
    ("etcdserverpb.Watch", &["Watch"]),
    ("etcdserverpb.Auth", &["Authenticate"]),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(fds_path), Some(out_dir)) = (args.next(), args.next()) else {
        return Err("usage: etcd-rpc-gen DESCRIPTOR_SET OUT_DIR".into());
    };
    let bytes = std::fs::read(PathBuf::from(fds_path))?;
    let mut fds = FileDescriptorSet::decode(bytes.as_slice())?;
    trim(&mut fds);
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .out_dir(PathBuf::from(out_dir))
        .compile_fds(fds)?;
    Ok(())
}

/// Every message a message refers to, by full name (`.pkg.Name`), nested
/// messages included.
fn refs(prefix: &str, m: &DescriptorProto, out: &mut BTreeMap<String, Vec<String>>) {
    let name = format!("{prefix}.{}", m.name());
    let mut uses: Vec<String> = m
        .field
        .iter()
        .filter(|f| !f.type_name().is_empty())
        .map(|f| f.type_name().to_owned())
        .collect();
    for nested in &m.nested_type {
        uses.push(format!("{name}.{}", nested.name()));
        refs(&name, nested, out);
    }
    out.insert(name, uses);
}

/// Keeps the services and methods in [`KEEP`], the messages and enums they
/// reach, and the files that still hold something.
fn trim(fds: &mut FileDescriptorSet) {
    let mut graph = BTreeMap::new();
    for f in &fds.file {
        let prefix = format!(".{}", f.package());
        for m in &f.message_type {
            refs(&prefix, m, &mut graph);
        }
    }
    let mut todo: Vec<String> = Vec::new();
    for f in &fds.file {
        for s in &f.service {
            let full = format!("{}.{}", f.package(), s.name());
            let Some((_, methods)) = KEEP.iter().find(|(n, _)| *n == full) else {
                continue;
            };
            for m in s.method.iter().filter(|m| methods.contains(&m.name())) {
                todo.push(m.input_type().to_owned());
                todo.push(m.output_type().to_owned());
            }
        }
    }
    let mut reached = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if reached.insert(name.clone()) {
            todo.extend(graph.get(&name).into_iter().flatten().cloned());
        }
    }
    for f in &mut fds.file {
        trim_file(f, &reached);
    }
    fds.file
        .retain(|f| !(f.message_type.is_empty() && f.enum_type.is_empty() && f.service.is_empty()));
    let kept: BTreeSet<String> = fds.file.iter().map(|f| f.name().to_owned()).collect();
    for f in &mut fds.file {
        f.dependency.retain(|d| kept.contains(d));
        f.public_dependency.clear();
        f.weak_dependency.clear();
    }
}

/// Drops what `reached` does not name from one file, and keeps its comments
/// on the right items (source info addresses items by index).
fn trim_file(f: &mut FileDescriptorProto, reached: &BTreeSet<String>) {
    let prefix = format!(".{}", f.package());
    let package = f.package().to_owned();
    let msgs = keep_indices(&f.message_type, |m| {
        reached.contains(&format!("{prefix}.{}", m.name()))
    });
    let enums = keep_indices(&f.enum_type, |e| {
        reached.contains(&format!("{prefix}.{}", e.name()))
    });
    let services = keep_indices(&f.service, |s| {
        KEEP.iter()
            .any(|(n, _)| *n == format!("{package}.{}", s.name()))
    });
    let mut methods = BTreeMap::new();
    for &old in services.keys() {
        let s = &f.service[old];
        let wanted = KEEP
            .iter()
            .find(|(n, _)| *n == format!("{package}.{}", s.name()))
            .map_or(&[][..], |(_, m)| *m);
        methods.insert(old, keep_indices(&s.method, |m| wanted.contains(&m.name())));
    }
    if let Some(info) = f.source_code_info.as_mut() {
        info.location
            .retain_mut(|loc| remap(&mut loc.path, &msgs, &enums, &services, &methods));
    }
    f.message_type = select(&f.message_type, &msgs);
    f.enum_type = select(&f.enum_type, &enums);
    let mut kept_services = select(&f.service, &services);
    for (s, &old) in kept_services.iter_mut().zip(services.keys()) {
        s.method = select(&s.method, &methods[&old]);
    }
    f.service = kept_services;
}

/// Old index -> new index of the items `keep` accepts.
fn keep_indices<T>(items: &[T], keep: impl Fn(&T) -> bool) -> BTreeMap<usize, i32> {
    let mut next = 0;
    let mut map = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if keep(item) {
            map.insert(i, next);
            next += 1;
        }
    }
    map
}

fn select<T: Clone>(items: &[T], map: &BTreeMap<usize, i32>) -> Vec<T> {
    map.keys().map(|&i| items[i].clone()).collect()
}

/// Rewrites a source-info path to the trimmed file; `false` drops it.
/// Paths start with the field number in `FileDescriptorProto`: 4 messages,
/// 5 enums, 6 services (then 2 for a service's methods).
fn remap(
    path: &mut [i32],
    msgs: &BTreeMap<usize, i32>,
    enums: &BTreeMap<usize, i32>,
    services: &BTreeMap<usize, i32>,
    methods: &BTreeMap<usize, BTreeMap<usize, i32>>,
) -> bool {
    let index = |i: i32| usize::try_from(i).ok();
    let map = match path.first() {
        Some(4) => msgs,
        Some(5) => enums,
        Some(6) => services,
        _ => return true,
    };
    let Some(old) = path.get(1).copied().and_then(index) else {
        return true;
    };
    let Some(&new) = map.get(&old) else {
        return false;
    };
    path[1] = new;
    if path[0] == 6 && path.get(2) == Some(&2) {
        let Some(m) = path.get(3).copied().and_then(index) else {
            return true;
        };
        match methods.get(&old).and_then(|ms| ms.get(&m)) {
            Some(&new_m) => path[3] = new_m,
            None => return false,
        }
    }
    true
}
