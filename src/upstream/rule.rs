//! Which DestinationRule applies to a destination host: an exact host
//! first, else the wildcard rule with the longest suffix that covers it
//! (`*.foocorp.com` over `*.com` over `*`); between rules for the same
//! host, the oldest, as Istio picks. Rules are looked up by the qualified
//! host, whatever namespace they live in (one gateway sees them all).

use std::collections::HashMap;

use crate::config::checked::destination_rule::CheckedDestinationRule;
use crate::config::host;

/// The rules of one compile, by host.
#[derive(Debug, Default)]
pub struct RuleIndex<'a> {
    exact: HashMap<&'a str, &'a CheckedDestinationRule>,
    /// `*.suffix` and `*` rules, longest pattern first, then oldest.
    wildcard: Vec<&'a CheckedDestinationRule>,
}

impl<'a> RuleIndex<'a> {
    /// `rules` in creation order.
    pub fn new(rules: &[&'a CheckedDestinationRule]) -> RuleIndex<'a> {
        let mut idx = RuleIndex::default();
        for r in rules {
            if r.host.starts_with('*') {
                idx.wildcard.push(r);
            } else {
                idx.exact.entry(r.host.as_str()).or_insert(r);
            }
        }
        // Stable: equal lengths keep creation order.
        idx.wildcard
            .sort_by_key(|r| std::cmp::Reverse(r.host.len()));
        idx
    }
}

/// The rule for `dest_host` (qualified, lower-case), if any.
pub fn rule_for<'a>(idx: &RuleIndex<'a>, dest_host: &str) -> Option<&'a CheckedDestinationRule> {
    if let Some(r) = idx.exact.get(dest_host) {
        return Some(r);
    }
    idx.wildcard
        .iter()
        .find(|r| host::matches(&r.host, dest_host))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::checked::destination_rule::Policy;

    fn rule(name: &str, host: &str) -> CheckedDestinationRule {
        CheckedDestinationRule {
            namespace: "default".into(),
            name: name.into(),
            host: host.into(),
            creation_timestamp: None,
            policy: Policy::default(),
            subsets: Vec::new(),
        }
    }

    #[test]
    fn the_most_specific_then_the_oldest_rule_wins() {
        let rules = [
            rule("all", "*"),
            rule("com", "*.com"),
            rule("foo", "*.foocorp.com"),
            rule("exact", "api.foocorp.com"),
            rule("exact-newer", "api.foocorp.com"),
            rule("foo-newer", "*.foocorp.com"),
        ];
        let refs: Vec<&CheckedDestinationRule> = rules.iter().collect();
        let idx = RuleIndex::new(&refs);
        let name = |h: &str| rule_for(&idx, h).map(|r| r.name.as_str());
        assert_eq!(name("api.foocorp.com"), Some("exact"));
        assert_eq!(name("web.foocorp.com"), Some("foo"));
        assert_eq!(name("example.com"), Some("com"));
        assert_eq!(name("svc.cluster.local"), Some("all"));
        let none = RuleIndex::new(&[]);
        assert!(rule_for(&none, "api.foocorp.com").is_none());
    }
}
