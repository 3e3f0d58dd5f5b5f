//! The SNI table: exact name, then the longest `*.` wildcard, then `*`.
//! Pure data and a pure lookup, table-tested.

use std::collections::HashMap;

/// Maps server names to an index into the listener's servers.
#[derive(Debug, Clone, Default)]
pub struct SniTable {
    exact: HashMap<String, usize>,
    /// (suffix including the leading dot, index), longest suffix first.
    wildcards: Vec<(String, usize)>,
    any: Option<usize>,
}

impl SniTable {
    /// Adds a host pattern; the first server to claim a name keeps it.
    pub fn insert(&mut self, pattern: &str, index: usize) {
        let p = pattern.to_ascii_lowercase();
        if p == "*" {
            self.any.get_or_insert(index);
        } else if let Some(suffix) = p.strip_prefix('*') {
            if !self.wildcards.iter().any(|(s, _)| *s == suffix) {
                self.wildcards.push((suffix.to_owned(), index));
                self.wildcards
                    .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
            }
        } else {
            self.exact.entry(p).or_insert(index);
        }
    }

    /// The server for an SNI; `None` (no SNI) only matches a `*` server.
    pub fn lookup(&self, sni: Option<&str>) -> Option<usize> {
        let Some(name) = sni else {
            return self.any;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(i) = self.exact.get(&name) {
            return Some(*i);
        }
        for (suffix, i) in &self.wildcards {
            if name.len() > suffix.len() && name.ends_with(suffix.as_str()) {
                return Some(*i);
            }
        }
        self.any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let mut t = SniTable::default();
        t.insert("frontend.foocorp.com", 0);
        t.insert("*.foocorp.com", 1);
        t.insert("*.eu.foocorp.com", 2);
        let cases = [
            (Some("frontend.foocorp.com"), Some(0)),
            (Some("FRONTEND.foocorp.com."), Some(0)),
            (Some("inventory.foocorp.com"), Some(1)),
            (Some("a.eu.foocorp.com"), Some(2)),
            (Some("foocorp.com"), None),
            (Some("other.com"), None),
            (None, None),
        ];
        for (sni, want) in cases {
            assert_eq!(t.lookup(sni), want, "{sni:?}");
        }
        t.insert("*", 3);
        assert_eq!(t.lookup(None), Some(3));
        assert_eq!(t.lookup(Some("other.com")), Some(3));
    }
}

#[cfg(test)]
#[path = "sni_prop.rs"]
mod prop;
