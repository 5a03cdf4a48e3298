//! Admission: the queue bound, checked the moment a request's inputs are counted, before it
//! takes a thread, tokenizes or waits. A request over the bound gets 503 at once, so a flood
//! of connections costs the server a parse each, never a blocked thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Error;

/// Inputs admitted and not yet answered, and their bound (`ServerConfig::max_queued`).
#[derive(Debug)]
pub struct Admission {
    admitted: AtomicUsize,
    limit: usize,
}

/// Inputs of one admitted request; they leave the count when it is dropped (answered,
/// failed, or abandoned by a client that hung up).
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    inputs: usize,
}

impl Admission {
    /// Admits up to `limit` inputs at once.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            admitted: AtomicUsize::new(0),
            limit,
        })
    }

    /// Admits `inputs` more inputs, or refuses with [`Error::Busy`] when that would pass the
    /// bound. A request larger than the whole bound still runs when nothing else is admitted,
    /// as the embedder's own queue allows.
    pub fn admit(self: &Arc<Self>, inputs: usize) -> Result<Permit, Error> {
        let limit = self.limit;
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q == 0 || q + inputs <= limit).then_some(q + inputs)
            })
            .map_err(|queued| Error::Busy { queued, limit })?;
        Ok(Permit {
            admission: Arc::clone(self),
            inputs,
        })
    }

    /// Inputs admitted right now.
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Relaxed)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission
            .admitted
            .fetch_sub(self.inputs, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_bound_and_frees_on_drop() {
        let admission = Admission::new(4);
        let a = admission.admit(3).unwrap();
        assert!(matches!(
            admission.admit(2),
            Err(Error::Busy {
                queued: 3,
                limit: 4
            })
        ));
        let b = admission.admit(1).unwrap();
        assert_eq!(admission.admitted(), 4);
        drop(a);
        drop(b);
        assert_eq!(admission.admitted(), 0);
        // Alone, a request over the bound runs.
        let big = admission.admit(10).unwrap();
        assert!(admission.admit(1).is_err());
        drop(big);
    }
}
