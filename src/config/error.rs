//! Errors that say exactly where a manifest is wrong.

use std::fmt;

/// One problem in one manifest: file, document, object, field path, message.
///
/// Renders as one line, e.g.
/// `foocorp.yaml: document 1 (Gateway default/foocorp-gateway): spec.servers[1].tls: mode MUTUAL needs credentialName or caCertificates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub document: Option<usize>,
    pub object: Option<String>,
    pub path: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.into(),
            document: None,
            object: None,
            path: None,
            message: one_line(&message.into()),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(d) = self.document {
            write!(f, ": document {d}")?;
        }
        if let Some(o) = &self.object {
            write!(f, " ({o})")?;
        }
        if let Some(p) = &self.path {
            write!(f, ": {p}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Folds a possibly multi-line message from a parser into one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Collects field errors for one object during validation.
#[derive(Debug, Default)]
pub struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
