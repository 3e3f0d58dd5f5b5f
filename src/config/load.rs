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
use super::gateway_api::{self, Object};
use super::{Kind, Resource, validate};
use documents::{split_documents, yaml_error};

mod documents;
#[cfg(test)]
mod prop;

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
    let file = std::fs::File::open(name)
        .map_err(|e| ConfigError::file(name, format!("cannot read: {e}")))?;
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
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for doc in split_documents(&src.text) {
        let value: Value = match serde_saphyr::from_str(doc.text) {
            Ok(v) => v,
            Err(e) => {
                errors.push(ConfigError {
                    file: src.name.clone(),
                    document: Some(doc.number),
                    object: None,
                    path: None,
                    message: printable(&format!(
                        "invalid YAML: {}",
                        yaml_error(&e, doc.first_line)
                    )),
                });
                continue;
            }
        };
        if value.is_null() {
            continue;
        }
        match parse_document(&src.name, doc.number, value, ns) {
            Ok(r) => out.push(Loaded {
                file: src.name.clone(),
                document: doc.number,
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

/// Names every object in the `-f` arguments (kind, namespace, name) without
/// validating them further: what `delete -f` needs, so that a file that no
/// longer validates can still delete what it once created.
pub fn identify_all(
    args: &[String],
    ns: &NamespacePolicy,
) -> Result<Vec<(Kind, String, String)>, Vec<ConfigError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for arg in args {
        let sources = match read_sources(arg) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for src in sources {
            for doc in split_documents(&src.text) {
                let err = |message: String| ConfigError {
                    file: src.name.clone(),
                    document: Some(doc.number),
                    object: None,
                    path: None,
                    message,
                };
                let value: Value = match serde_saphyr::from_str(doc.text) {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(err(format!(
                            "invalid YAML: {}",
                            yaml_error(&e, doc.first_line)
                        )));
                        continue;
                    }
                };
                if value.is_null() {
                    continue;
                }
                let text = |p: &str| value.pointer(p).and_then(Value::as_str).map(str::to_owned);
                let kind = text("/kind").as_deref().and_then(|k| {
                    gateway_api::kind_of(&text("/apiVersion").unwrap_or_default(), k)
                        .or_else(|| Kind::from_kind(k))
                });
                match (kind, text("/metadata/name")) {
                    (Some(kind), Some(name)) => {
                        let namespace =
                            text("/metadata/namespace").unwrap_or_else(|| ns.namespace.clone());
                        out.push((kind, namespace, name));
                    }
                    (None, _) => errors.push(err(format!(
                        "kind: unsupported or missing kind; supported: {}",
                        Kind::supported_list()
                    ))),
                    (_, None) => errors.push(err("metadata.name: name is required".into())),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// What a document says it is, checked before its body is parsed.
struct Header {
    kind: Kind,
    /// The namespace it goes to (its own, or `-n`, or `default`).
    namespace: String,
    /// `Kind namespace/name`, as errors name it.
    object: Option<String>,
}

/// An error about a document: (object, field path, message).
type HeaderError = (Option<String>, Option<String>, String);

/// Reads and checks `apiVersion`, `kind` and the namespace of a document.
fn header(doc: &Value, ns: &NamespacePolicy) -> Result<Header, HeaderError> {
    let Value::Object(map) = doc else {
        return Err((
            None,
            None,
            "expected an object with apiVersion, kind and metadata".into(),
        ));
    };
    let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
    for field in ["apiVersion", "kind"] {
        if text(field).is_none() {
            let what = if map.contains_key(field) {
                "must be a string"
            } else {
                "required field is missing"
            };
            return Err((
                None,
                Some(field.into()),
                format!("{what}; supported: {}", Kind::supported_list()),
            ));
        }
    }
    let (kind_s, api) = (
        text("kind").unwrap_or_default(),
        text("apiVersion").unwrap_or_default(),
    );
    let Some(kind) = gateway_api::kind_of(&api, &kind_s).or_else(|| Kind::from_kind(&kind_s))
    else {
        return Err((
            None,
            Some("kind".into()),
            format!(
                "unknown kind {kind_s:?} (apiVersion {api}); supported: {}",
                Kind::supported_list()
            ),
        ));
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
    if !kind.api_versions().contains(&api.as_str()) {
        return Err((
            object,
            Some("apiVersion".into()),
            format!(
                "{api:?} is not supported for kind {kind}; supported: {}",
                kind.api_versions().join(", ")
            ),
        ));
    }
    if let Some(d) = &doc_ns
        && ns.explicit
        && *d != ns.namespace
    {
        return Err((
            object,
            Some("metadata.namespace".into()),
            format!(
                "the object's namespace {d:?} does not match the namespace {:?} given with -n",
                ns.namespace
            ),
        ));
    }
    Ok(Header {
        kind,
        namespace: effective_ns,
        object,
    })
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
        object: object.as_deref().map(printable),
        path: path.as_deref().map(printable),
        message: printable(&one_line(&message)),
    };
    let Header {
        kind,
        namespace: effective_ns,
        object,
    } = header(&doc, ns).map_err(|(object, path, message)| vec![err(object, path, message)])?;
    let typed = |doc: Value| -> Result<Resource, (Option<String>, String)> {
        let r = match kind {
            Kind::Gateway => Resource::Gateway(typed_from(doc)?),
            Kind::VirtualService => Resource::VirtualService(typed_from(doc)?),
            Kind::ServiceEntry => Resource::ServiceEntry(typed_from(doc)?),
            Kind::DestinationRule => Resource::DestinationRule(Box::new(typed_from(doc)?)),
            Kind::Secret => Resource::Secret(typed_from(doc)?),
            Kind::Service => Resource::Service(Box::new(typed_from(doc)?)),
            Kind::EndpointSlice => Resource::EndpointSlice(Box::new(typed_from(doc)?)),
            k => Object::typed(k, doc)?.into(),
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

/// Text from a document as an error shows it: escaped when it holds a
/// control character (a name such as `"a\r\n"`), so that every error stays
/// one line and a manifest cannot write control sequences to a terminal.
fn printable(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.escape_debug().to_string()
    } else {
        s.to_owned()
    }
}

pub(super) fn typed_from<T: DeserializeOwned>(doc: Value) -> Result<T, (Option<String>, String)> {
    serde_path_to_error::deserialize::<_, T>(doc).map_err(|e| {
        let path = e.path().to_string();
        let path = (path != ".").then_some(path);
        let message = e.into_inner().to_string();
        // serde names a missing field in the message and points at its
        // parent; point at the field itself, as for every other error.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            let full = match path {
                Some(p) => format!("{p}.{field}"),
                None => field.to_owned(),
            };
            return (Some(full), "required field is missing".to_owned());
        }
        (path, humanize(&message))
    })
}

/// Replaces Rust type names in serde's messages with what a YAML author knows.
fn humanize(message: &str) -> String {
    let Some((head, expected)) = message.rsplit_once(", expected ") else {
        return message.to_owned();
    };
    let plain = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        e if e.starts_with("struct ") => "an object",
        _ => return message.to_owned(),
    };
    format!("{head}, expected {plain}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_the_document_and_the_file_line() {
        let src = Source {
            name: "f.yaml".into(),
            text: "a: 1\n---\nb: {c: 1\n".into(),
        };
        let ns = NamespacePolicy {
            namespace: "default".into(),
            explicit: false,
        };
        let errors = parse_source(&src, &ns).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        let bad = errors.iter().find(|e| e.document == Some(2)).unwrap();
        assert!(bad.message.starts_with("invalid YAML: "), "{bad}");
        assert!(bad.message.contains("line 3"), "{bad}");
        assert!(!bad.message.contains('\n'), "{bad}");
    }

    /// Found by `prop_yaml_edited_manifests_load_or_name_the_file`: a name
    /// with a control character was shown raw, breaking the one-line error
    /// (and letting a manifest write to the user's terminal).
    #[test]
    fn control_characters_in_a_name_are_shown_escaped() {
        let src = Source {
            name: "f.yaml".into(),
            text: "apiVersion: v1\nkind: Secret\nmetadata: {name: \"a\\r\\n\\e[2J\", namespace: \"b\\0\"}\n".into(),
        };
        let ns = NamespacePolicy {
            namespace: "default".into(),
            explicit: false,
        };
        let errors = parse_source(&src, &ns).unwrap_err();
        for e in &errors {
            let shown = e.to_string();
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
            assert!(shown.contains(r"(Secret b\0/a\r\n\u{1b}[2J)"), "{shown}");
        }
    }
}
