//! The control loop's look at serving certificates' dates (see
//! `secret::expiry`): after each publish, and when the timer it sets
//! fires. It only logs and refreshes admin rows; it never changes what is
//! served.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::time::Duration;

use super::Loop;
use crate::secret::credential::now_unix;

/// The longest the expiry timer sleeps: a far `notAfter` is looked at
/// again once a day rather than trusted to a years-long timer.
const LONGEST_SLEEP: i64 = 24 * 3600;

impl Loop {
    /// Logs credentials that became EXPIRING or EXPIRED, refreshes their
    /// admin rows, and sets the timer for the next change.
    pub(super) fn check_expiry(&mut self) {
        let now = now_unix();
        let snap = self.published.clone();
        // Which servers use which credential: worked out once, and only
        // when some credential's state changed (a log line names them).
        let index: OnceCell<HashMap<&str, Vec<String>>> = OnceCell::new();
        let servers_of = |name: &str| -> Vec<String> {
            index
                .get_or_init(|| {
                    let mut by_credential: HashMap<&str, Vec<String>> = HashMap::new();
                    for s in snap
                        .iter()
                        .flat_map(|s| s.listeners.values())
                        .flat_map(|l| l.servers.iter())
                    {
                        if let Some(c) = s.credential.as_deref() {
                            by_credential.entry(c).or_default().push(s.id.to_string());
                        }
                    }
                    by_credential
                })
                .get(name)
                .cloned()
                .unwrap_or_default()
        };
        let (changed, next) = self.expiry.check(&self.sds, now, &servers_of);
        self.refresh_rows(&changed);
        self.expiry_at = next.map(|t| {
            let secs = t.saturating_sub(now).clamp(0, LONGEST_SLEEP);
            // A little past the second boundary, so the next look sees it.
            tokio::time::Instant::now()
                + Duration::from_secs(secs.unsigned_abs())
                + Duration::from_millis(20)
        });
    }
}
