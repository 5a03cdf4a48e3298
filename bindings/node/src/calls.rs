//! Calls in flight: each one a promise, and once its texts are queued, the handle that cancels
//! them. An embedder keeps its calls in a [`Registry`] so that `close()` can reject them all.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use gguf_embed::Canceller;

use crate::errors::Failure;
use crate::settle::{Make, Settle};

/// One call's promise and what cancels its work.
pub struct Call {
    id: u64,
    pub settle: Settle,
    canceller: Mutex<Option<Canceller>>,
    registry: Weak<Registry>,
}

impl Call {
    /// Fulfils the call's promise (unless it was settled already). It leaves the registry
    /// first, so that JavaScript never sees a settled call counted as pending.
    pub fn resolve(&self, make: Make) {
        self.forget();
        self.settle.resolve(make);
    }

    /// Rejects the call's promise and cancels its queued work (unless it was settled already).
    pub fn reject(&self, failure: Failure) {
        self.forget();
        if self.settle.reject(failure)
            && let Some(canceller) = self.canceller.lock().ok().and_then(|mut c| c.take())
        {
            canceller.cancel();
        }
    }

    /// Whether the promise is settled: nothing more needs doing.
    pub fn is_settled(&self) -> bool {
        self.settle.is_settled()
    }

    /// Keeps the handle that cancels the call's queued texts; cancels them at once if the call
    /// was rejected meanwhile (`reject` takes the handle after settling, so one of the two
    /// sees the other).
    pub fn set_canceller(&self, canceller: Canceller) {
        let Ok(mut slot) = self.canceller.lock() else {
            return;
        };
        if self.settle.is_settled() {
            canceller.cancel();
        } else {
            *slot = Some(canceller);
        }
    }

    fn forget(&self) {
        if let Some(registry) = self.registry.upgrade()
            && let Ok(mut calls) = registry.calls.lock()
        {
            calls.remove(&self.id);
        }
    }
}

/// The calls of one embedder that have not settled yet.
#[derive(Default)]
pub struct Registry {
    calls: Mutex<BTreeMap<u64, Arc<Call>>>,
    next: AtomicU64,
}

impl Registry {
    /// Registers a call whose promise `settle` holds.
    pub fn add(self: &Arc<Self>, settle: Settle) -> Arc<Call> {
        let call = Arc::new(Call {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            settle,
            canceller: Mutex::new(None),
            registry: Arc::downgrade(self),
        });
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(call.id, Arc::clone(&call));
        }
        call
    }

    /// A call of no embedder's (loading one, closing one).
    pub fn standalone(settle: Settle) -> Arc<Call> {
        Arc::new(Call {
            id: 0,
            settle,
            canceller: Mutex::new(None),
            registry: Weak::new(),
        })
    }

    /// Rejects every call still pending (at `close()`).
    pub fn reject_all(&self, failure: impl Fn() -> Failure) {
        // Taken out first (oldest first): rejecting a call removes it from the map.
        let calls = self
            .calls
            .lock()
            .map(|mut calls| std::mem::take(&mut *calls))
            .unwrap_or_default();
        for call in calls.into_values() {
            call.reject(failure());
        }
    }

    /// How many calls are pending.
    pub fn len(&self) -> usize {
        self.calls.lock().map_or(0, |c| c.len())
    }
}
