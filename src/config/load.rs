//! Reading manifests: files, directories and stdin; multi-document YAML and
//! JSON; into typed, validated [`Resource`]s.
//!
//! Every document is checked before the caller writes anything, so an apply
//! can be all or nothing.

use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ConfigError, one_line};
use super::{Kind, Resource, validate};

/// The text of one input file (or stdin), named as the user gave it.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// One object read from a file, with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub file: String,
    pub document: usize,
    pub resource: Resource,
}

/// Largest manifest file read (secrets with a few certificates are far smaller).
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Reads `-f` arguments: a file, a directory (its `.yaml`, `.yml` and `.json`
/// files in name order), or `-` for stdin.
pub fn read_sources(arg: &str) -> Result<Vec<Source>, ConfigError> {
    if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_FILE_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| ConfigError::file("<stdin>", format!("cannot read: {e}")))?;
        return Ok(vec![Source {
            name: "<stdin>".into(),
            text,
        }]);
    }
    let path = Path::new(arg);
    let meta =
        std::fs::metadata(path).map_err(|e| ConfigError::file(arg, format!("cannot read: {e}")))?;
    if meta.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| ConfigError::file(arg, format!("cannot read directory: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("yaml" | "yml" | "json")
                    )
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(ConfigError::file(
                arg,
                "no .yaml, .yml or .json files in this directory",
            ));
        }
        files
            .iter()
            .map(|p| read_file(&p.display().to_string()))
            .collect()
    } else {
        Ok(vec![read_file(arg)?])
    }
}

fn read_file(name: &str) -> Result<Source, ConfigError> {
    let file =
        std::fs::File::open(name).map_err(|e| ConfigError::file(name, format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ConfigError::file(name, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::file(name, "file is larger than 8 MiB"));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| ConfigError::file(name, "not UTF-8 text (YAML or JSON expected)"))?;
    Ok(Source {
        name: name.into(),
        text,
    })
}

/// Where loaded objects get their namespace from.
#[derive(Debug, Clone)]
pub struct NamespacePolicy {
    /// `-n`, or `default`.
    pub namespace: String,
    /// Whether `-n` was given: then an object naming another namespace is an error, as in kubectl.
    pub explicit: bool,
}

/// Parses and validates every document of one source. Errors for all bad
/// documents are returned together.
pub fn parse_source(src: &Source, ns: &NamespacePolicy) -> Result<Vec<Loaded>, Vec<ConfigError>> {
    let docs: Vec<Value> = match serde_saphyr::from_multiple(&src.text) {
        Ok(d) => d,
        Err(e) => {
            let msg = one_line(&e.without_snippet().to_string());
            return Err(vec![ConfigError::file(
                &src.name,
                format!("invalid YAML: {msg}"),
            )]);
        }
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        match parse_document(&src.name, i + 1, doc, ns) {
            Ok(r) => out.push(Loaded {
                file: src.name.clone(),
                document: i + 1,
                resource: r,
            }),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if out.is_empty() && errors.is_empty() {
        errors.push(ConfigError::file(&src.name, "no objects in this file"));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Parses one document (already YAML-decoded) into a validated resource.
pub fn parse_document(
    file: &str,
    document: usize,
    doc: Value,
    ns: &NamespacePolicy,
) -> Result<Resource, Vec<ConfigError>> {
    let err = |object: Option<String>, path: Option<String>, message: String| ConfigError {
        file: file.into(),
        document: Some(document),
        object,
        path,
        message: one_line(&message),
    };
    let Value::Object(map) = &doc else {
        return Err(vec![err(
            None,
            None,
            "expected an object with apiVersion, kind and metadata".into(),
        )]);
    };
    let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(kind_s), Some(api)) = (text("kind"), text("apiVersion")) else {
        return Err(vec![err(
            None,
            None,
            format!(
                "apiVersion and kind are required; supported: {}",
                Kind::supported_list()
            ),
        )]);
    };
    let Some(kind) = Kind::from_kind(&kind_s).filter(|k| k.api_versions().contains(&api.as_str()))
    else {
        return Err(vec![err(
            None,
            None,
            format!(
                "unsupported apiVersion/kind {api}/{kind_s}; supported: {}",
                Kind::supported_list()
            ),
        )]);
    };
    let meta = map.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let doc_ns = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let effective_ns = doc_ns.clone().unwrap_or_else(|| ns.namespace.clone());
    let object = Some(format!("{kind} {effective_ns}/{name}"));
    if let Some(d) = &doc_ns
        && ns.explicit
        && *d != ns.namespace
    {
        return Err(vec![err(
            object,
            Some("metadata.namespace".into()),
            format!(
                "the object's namespace {d:?} does not match the namespace {:?} given with -n",
                ns.namespace
            ),
        )]);
    }
    let typed = |doc: Value| -> Result<Resource, (Option<String>, String)> {
        let r = match kind {
            Kind::Gateway => Resource::Gateway(typed_from(doc)?),
            Kind::VirtualService => Resource::VirtualService(typed_from(doc)?),
            Kind::ServiceEntry => Resource::ServiceEntry(typed_from(doc)?),
            Kind::Secret => Resource::Secret(typed_from(doc)?),
        };
        Ok(r)
    };
    let mut resource = typed(doc).map_err(|(path, msg)| vec![err(object.clone(), path, msg)])?;
    resource.meta_mut().namespace = Some(effective_ns);
    if let Resource::Secret(s) = &mut resource {
        s.normalize();
    }
    let field_errors = validate::validate(&resource);
    if field_errors.is_empty() {
        Ok(resource)
    } else {
        Err(field_errors
            .0
            .into_iter()
            .map(|(p, m)| err(object.clone(), Some(p), m))
            .collect())
    }
}

fn typed_from<T: DeserializeOwned>(doc: Value) -> Result<T, (Option<String>, String)> {
    serde_path_to_error::deserialize::<_, T>(doc).map_err(|e| {
        let path = e.path().to_string();
        let path = (path != ".").then_some(path);
        (path, e.into_inner().to_string())
    })
}

/// Reads and validates everything the `-f` arguments name. Returns every
/// error found, so that nothing is applied unless everything is good.
pub fn load_all(args: &[String], ns: &NamespacePolicy) -> Result<Vec<Loaded>, Vec<ConfigError>> {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for arg in args {
        match read_sources(arg) {
            Ok(sources) => {
                for src in sources {
                    match parse_source(&src, ns) {
                        Ok(mut l) => loaded.append(&mut l),
                        Err(mut e) => errors.append(&mut e),
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    // The same object twice in one apply is almost always a mistake.
    let mut seen = std::collections::BTreeMap::new();
    for l in &loaded {
        let key = (
            l.resource.kind(),
            l.resource.meta().ns().to_owned(),
            l.resource.meta().name.clone(),
        );
        if let Some((f, d)) = seen.insert(key, (l.file.clone(), l.document)) {
            errors.push(ConfigError {
                file: l.file.clone(),
                document: Some(l.document),
                object: Some(l.resource.describe()),
                path: Some("metadata.name".into()),
                message: format!("the same object is also defined in {f}: document {d}"),
            });
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors)
    }
}
