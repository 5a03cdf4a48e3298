//! Calls in flight: each one a promise, and the handle that cancels its queued texts, made with
//! the call, before its texts are queued. An embedder keeps its calls in a [`Registry`] so that `close()` can reject them all.

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
    /// Made with the call and given to the engine with its texts
    /// (`Embedder::submit_with_canceller`): an abort cancels them whenever it comes, also while
    /// the dispatcher is still queueing them.
    pub canceller: Canceller,
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
        if self.settle.reject(failure) {
            self.canceller.cancel();
        }
    }

    /// Whether the promise is settled: nothing more needs doing.
    pub fn is_settled(&self) -> bool {
        self.settle.is_settled()
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
            canceller: Canceller::new(),
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
            canceller: Canceller::new(),
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
