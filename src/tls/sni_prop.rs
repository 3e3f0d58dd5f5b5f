//! Properties of the SNI table, checked against a reference model written
//! from the rule itself (Istio host semantics, as ARCHITECTURE.md states
//! them): an exact name wins, then the longest `*.suffix` that covers the
//! name (any number of labels before the suffix, never the suffix itself),
//! then `*`; names compare without case, an SNI's trailing dot is ignored,
//! and among equal patterns the first server inserted keeps the name.

use proptest::prelude::*;

use super::SniTable;

/// A host name over a few labels, so that names and patterns collide often.
fn name() -> impl Strategy<Value = String> {
    let label = prop::sample::select(vec!["a", "b", "foo", "eu", "Foo", "A", "x-1"]);
    prop::collection::vec(label, 1..5).prop_map(|labels| labels.join("."))
}

/// A Gateway host pattern: an exact name, `*.suffix` or `*`.
fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => name(),
        3 => name().prop_map(|n| format!("*.{n}")),
        1 => Just("*".to_owned()),
    ]
}

/// What a client may send as SNI: a name in any case, with or without a
/// trailing dot, or none at all.
fn sni() -> impl Strategy<Value = Option<String>> {
    let spelled = (name(), any::<bool>(), any::<bool>()).prop_map(|(n, upper, dot)| {
        let n = if upper { n.to_ascii_uppercase() } else { n };
        if dot { format!("{n}.") } else { n }
    });
    prop_oneof![8 => spelled.prop_map(Some), 1 => Just(None)]
}

/// The rule, written plainly: scan the patterns in insertion order.
fn model(patterns: &[(String, usize)], sni: Option<&str>) -> Option<usize> {
    let first = |pred: &dyn Fn(&str) -> bool| {
        patterns
            .iter()
            .find(|(p, _)| pred(&p.to_ascii_lowercase()))
            .map(|(_, i)| *i)
    };
    let any = first(&|p| p == "*");
    let Some(sni) = sni else {
        return any;
    };
    let name = sni.trim_end_matches('.').to_ascii_lowercase();
    if let Some(i) = first(&|p| p == name) {
        return Some(i);
    }
    // The suffixes that cover the name: the name is `label(s).suffix`.
    let covering = |p: &str| -> Option<usize> {
        let suffix = p.strip_prefix("*.")?;
        let head = name.strip_suffix(suffix)?.strip_suffix('.')?;
        (!head.is_empty()).then_some(suffix.len())
    };
    let longest = patterns
        .iter()
        .filter_map(|(p, _)| covering(&p.to_ascii_lowercase()))
        .max();
    match longest {
        Some(len) => first(&|p| covering(p) == Some(len)),
        None => any,
    }
}

fn table(patterns: &[(String, usize)]) -> SniTable {
    let mut t = SniTable::default();
    for (p, i) in patterns {
        t.insert(p, *i);
    }
    t
}

/// Patterns numbered in the order they are inserted.
fn patterns() -> impl Strategy<Value = Vec<(String, usize)>> {
    prop::collection::vec(pattern(), 0..10)
        .prop_map(|ps| ps.into_iter().enumerate().map(|(i, p)| (p, i)).collect())
}

proptest! {
    #[test]
    fn prop_sni_lookup_agrees_with_the_model(
        patterns in patterns(),
        queries in prop::collection::vec(sni(), 1..8),
    ) {
        let t = table(&patterns);
        for q in &queries {
            prop_assert_eq!(t.lookup(q.as_deref()), model(&patterns, q.as_deref()), "{:?}", q);
        }
    }

    /// Precedence never depends on the order servers were added in, once
    /// no two servers claim the same pattern.
    #[test]
    fn prop_sni_precedence_ignores_insertion_order(
        patterns in patterns(),
        order in any::<u64>(),
        queries in prop::collection::vec(sni(), 1..8),
    ) {
        let mut distinct: Vec<(String, usize)> = Vec::new();
        for (p, i) in patterns {
            if !distinct.iter().any(|(q, _)| q.eq_ignore_ascii_case(&p)) {
                distinct.push((p, i));
            }
        }
        let mut shuffled = distinct.clone();
        // A deterministic shuffle from the generated number.
        let mut n = order;
        for k in (1..shuffled.len()).rev() {
            let j = usize::try_from(n % (k as u64 + 1)).unwrap_or(0);
            shuffled.swap(k, j);
            n = n.rotate_left(7) ^ 0x9e37_79b9_7f4a_7c15;
        }
        let (a, b) = (table(&distinct), table(&shuffled));
        for q in &queries {
            prop_assert_eq!(a.lookup(q.as_deref()), b.lookup(q.as_deref()), "{:?}", q);
        }
    }

    /// A wildcard covers one or more labels before its suffix, never the
    /// suffix itself nor a name that merely ends with the same letters.
    #[test]
    fn prop_sni_wildcard_covers_subdomains_only(
        suffix in name(),
        head in name(),
        glued in "[a-z]{1,3}",
    ) {
        let t = table(&[(format!("*.{suffix}"), 7)]);
        prop_assert_eq!(t.lookup(Some(&suffix)), None);
        prop_assert_eq!(t.lookup(Some(&format!("{glued}{suffix}"))), None);
        prop_assert_eq!(t.lookup(Some(&format!(".{suffix}"))), None);
        prop_assert_eq!(t.lookup(Some(&format!("{head}.{suffix}"))), Some(7));
        let upper = format!("{head}.{suffix}.").to_ascii_uppercase();
        prop_assert_eq!(t.lookup(Some(&upper)), Some(7));
    }

    /// Any text as a pattern or as an SNI: an answer, never a panic, and an
    /// answer that names a server that was inserted.
    #[test]
    fn prop_sni_arbitrary_text_never_panics(
        patterns in prop::collection::vec((any::<String>(), 0usize..4), 0..6),
        queries in prop::collection::vec(prop::option::of(any::<String>()), 1..6),
        bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let t = table(&patterns);
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        for q in queries.iter().map(Option::as_deref).chain([Some(lossy.as_str())]) {
            if let Some(i) = t.lookup(q) {
                prop_assert!(patterns.iter().any(|(_, j)| *j == i));
            }
        }
    }
}
