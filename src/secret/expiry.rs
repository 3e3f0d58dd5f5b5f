//! Server certificates that run out while they serve.
//!
//! A server credential is checked for its dates when it is pushed; after
//! that, time passes. Following Envoy, an expired certificate keeps being
//! served (refusing every handshake would turn a missed renewal into an
//! outage for every client, including those that tolerate it); it is
//! reported instead: `EXPIRING` from `--expiry-warning` before its
//! `notAfter`, `EXPIRED` after, in `proxy-config secret` and `/credentials`,
//! with one warning log line per change naming the secret, its servers and
//! the `notAfter`.
//!
//! The control loop asks [`ExpiryWatch::check`] after each publish and
//! sleeps until the instant it returns (the next change of any
//! certificate's state): nothing here runs per request, and an idle
//! gateway wakes only at those instants.

use std::collections::HashMap;
use std::time::Duration;

use super::credential::rfc3339;
use super::sds::Sds;

/// Where a certificate stands against its `notAfter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Valid,
    /// Within the warning window before `notAfter`.
    Expiring,
    /// Past `notAfter` (RFC 5280: the certificate is valid through it).
    Expired,
}

/// Classifies a certificate whose `notAfter` is `not_after` at `now`
/// (unix seconds), with a warning window of `warning_secs` (0: none).
pub fn classify(not_after: i64, now: i64, warning_secs: i64) -> Expiry {
    if now > not_after {
        Expiry::Expired
    } else if warning_secs > 0 && now >= not_after.saturating_sub(warning_secs) {
        Expiry::Expiring
    } else {
        Expiry::Valid
    }
}

/// The first instant (unix seconds) after `now` at which [`classify`]
/// gives another answer, if any.
pub fn next_change(not_after: i64, now: i64, warning_secs: i64) -> Option<i64> {
    match classify(not_after, now, warning_secs) {
        Expiry::Valid if warning_secs > 0 => Some(not_after.saturating_sub(warning_secs)),
        Expiry::Valid | Expiry::Expiring => Some(not_after.saturating_add(1)),
        Expiry::Expired => None,
    }
}

/// What was last reported for each server credential.
#[derive(Debug)]
pub struct ExpiryWatch {
    warning: Duration,
    /// credential → (certificate fingerprint, its state when last checked).
    reported: HashMap<String, (String, Expiry)>,
}

impl ExpiryWatch {
    pub fn new(warning: Duration) -> ExpiryWatch {
        ExpiryWatch {
            warning,
            reported: HashMap::new(),
        }
    }

    pub fn warning_secs(&self) -> i64 {
        i64::try_from(self.warning.as_secs()).unwrap_or(i64::MAX)
    }

    /// Looks at every server credential in `sds` at `now`: logs each one
    /// that became EXPIRING or EXPIRED since the last look (`servers_of`
    /// names the servers it feeds). Returns the credentials whose state
    /// changed (their admin rows are stale) and when to look again. One
    /// map lookup per credential and no allocation unless one changed, so
    /// a rotation among ten thousand credentials stays cheap.
    pub fn check(
        &mut self,
        sds: &Sds,
        now: i64,
        servers_of: &dyn Fn(&str) -> Vec<String>,
    ) -> (Vec<String>, Option<i64>) {
        let warning = self.warning_secs();
        let mut changed = Vec::new();
        let mut next: Option<i64> = None;
        self.reported
            .retain(|name, _| sds.server_credential(name).is_some());
        for (name, entry) in &sds.certs {
            let Some(cred) = &entry.good else {
                continue;
            };
            let leaf = &cred.leaf;
            let state = classify(leaf.not_after, now, warning);
            if let Some(t) = next_change(leaf.not_after, now, warning) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            let before = self.reported.get(name);
            if before.is_some_and(|(sha, was)| *sha == leaf.sha256_hex && *was == state) {
                continue;
            }
            if before.is_some() || state != Expiry::Valid {
                changed.push(name.clone());
            }
            self.reported
                .insert(name.clone(), (leaf.sha256_hex.clone(), state));
            log(name, state, leaf.not_after, servers_of, self.warning);
        }
        (changed, next)
    }
}

/// A warning window as the flag takes it: `7d`, `12h`, `90s`.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s => format!("{s}s"),
    }
}

/// Says that `name` became EXPIRING or EXPIRED. A valid certificate (a
/// rotation) is said nothing about, so nothing is worked out for it:
/// `servers_of` looks at every server.
fn log(
    name: &str,
    state: Expiry,
    not_after: i64,
    servers_of: &dyn Fn(&str) -> Vec<String>,
    warning: Duration,
) {
    if state == Expiry::Valid {
        return;
    }
    let servers = servers_of(name);
    let warning = human(warning);
    let servers = if servers.is_empty() {
        "-".to_owned()
    } else {
        servers.join(",")
    };
    let not_after = rfc3339(not_after);
    match state {
        Expiry::Valid => {} // returned above
        Expiry::Expiring => tracing::warn!(
            target: "sds",
            secret = %name,
            %servers,
            %not_after,
            "RESOURCE NAME:{name}, EVENT: certificate EXPIRING: its notAfter {not_after} is within --expiry-warning {warning}; renew it"
        ),
        Expiry::Expired => tracing::warn!(
            target: "sds",
            secret = %name,
            %servers,
            %not_after,
            "RESOURCE NAME:{name}, EVENT: certificate EXPIRED at {not_after}; still serving it (as Envoy does): renew it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_their_next_change() {
        let day = 86_400;
        let cases = [
            // (not_after, now, warning, state, next change)
            (100, 0, 0, Expiry::Valid, Some(101)),
            (100, 100, 0, Expiry::Valid, Some(101)),
            (100, 101, 0, Expiry::Expired, None),
            (10 * day, 0, 7 * day, Expiry::Valid, Some(3 * day)),
            (
                10 * day,
                3 * day,
                7 * day,
                Expiry::Expiring,
                Some(10 * day + 1),
            ),
            (
                10 * day,
                10 * day,
                7 * day,
                Expiry::Expiring,
                Some(10 * day + 1),
            ),
            (10 * day, 10 * day + 1, 7 * day, Expiry::Expired, None),
            (i64::MAX, 0, i64::MAX, Expiry::Expiring, Some(i64::MAX)),
        ];
        for (not_after, now, warning, state, next) in cases {
            assert_eq!(
                classify(not_after, now, warning),
                state,
                "{not_after} {now}"
            );
            assert_eq!(
                next_change(not_after, now, warning),
                next,
                "{not_after} {now}"
            );
        }
    }
}
