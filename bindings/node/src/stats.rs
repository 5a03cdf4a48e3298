//! What the engine thread reports after each decode: a count for `embedder.info`, and a pause
//! that only the tests use (`_pauseForTests`): it holds the engine after a decode, before any
//! result is sent, so a test can show calls pending without relying on timing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

#[derive(Default)]
pub struct Stats {
    decodes: AtomicU64,
    paused: Mutex<bool>,
    resumed: Condvar,
}

impl Stats {
    /// Called by the engine thread after every decode.
    pub fn after_decode(&self) {
        self.decodes.fetch_add(1, Ordering::Relaxed);
        let Ok(mut paused) = self.paused.lock() else {
            return;
        };
        while *paused {
            paused = match self.resumed.wait(paused) {
                Ok(p) => p,
                Err(_) => return,
            };
        }
    }

    /// Decodes run so far.
    pub fn decodes(&self) -> u64 {
        self.decodes.load(Ordering::Relaxed)
    }

    /// Holds the engine after its next decode (`true`) or lets it go on.
    pub fn pause(&self, paused: bool) {
        if let Ok(mut p) = self.paused.lock() {
            *p = paused;
        }
        self.resumed.notify_all();
    }
}
