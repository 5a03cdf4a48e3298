//! Warnings at most once per interval per kind, with a count of the ones held back.
//!
//! Under a flood every rejected request (503) and every engine failure would log a line: a
//! thousand lines for a thousand clients, which is noise at best and, with a slow log sink,
//! work that competes with answering. Each kind of warning (its status code) is written at
//! most once per [`WARNING_INTERVAL`]; the next one written says how many were held back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shortest time between two warnings of one kind.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(5);

/// Decides which warnings are written (see the module docs).
#[derive(Debug)]
pub struct Warnings {
    interval: Duration,
    /// Per kind: when its last warning was written, and how many were held back since.
    kinds: Mutex<HashMap<u16, (Instant, u64)>>,
}

impl Default for Warnings {
    fn default() -> Self {
        Self::new(WARNING_INTERVAL)
    }
}

impl Warnings {
    /// Warnings of one kind at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a warning of `kind` happening at `now` is written: `Some(held back since the
    /// last one written)` if so, `None` if it is held back (and counted).
    pub fn admit(&self, kind: u16, now: Instant) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        match kinds.get_mut(&kind) {
            Some((last, held)) if now.saturating_duration_since(*last) < self.interval => {
                *held += 1;
                None
            }
            Some((last, held)) => {
                let since = std::mem::take(held);
                *last = now;
                Some(since)
            }
            None => {
                kinds.insert(kind, (now, 0));
                Some(0)
            }
        }
    }

    /// Logs `message` as a warning of `kind` unless one was logged less than the interval ago.
    pub fn warn(&self, kind: u16, api: &str, message: &str) {
        match self.admit(kind, Instant::now()) {
            Some(0) => tracing::warn!(api, "{message}"),
            Some(held) => tracing::warn!(
                api,
                "{message} (and {held} more with status {kind} in the last {} s or more)",
                self.interval.as_secs()
            ),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_per_kind_and_the_next_counts_the_rest() {
        let w = Warnings::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        assert_eq!(w.admit(503, at(0)), Some(0), "the first is written");
        for ms in [1, 100, 2000, 4999] {
            assert_eq!(w.admit(503, at(ms)), None, "held back at {ms} ms");
        }
        assert_eq!(
            w.admit(500, at(10)),
            Some(0),
            "another kind is not held back"
        );
        assert_eq!(
            w.admit(503, at(5000)),
            Some(4),
            "the next says how many were held"
        );
        assert_eq!(w.admit(503, at(5001)), None);
        assert_eq!(w.admit(503, at(20_000)), Some(1));
        assert_eq!(w.admit(500, at(20_000)), Some(0));
    }
}
