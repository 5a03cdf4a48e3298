//! Promises settled from any thread.
//!
//! A [`Settle`] owns one pending promise. Whichever thread settles it first wins (the engine's
//! completion, an `AbortSignal`, `close()`); later attempts do nothing. Settling goes through
//! the promise's thread-safe function (napi's `JsDeferred`): the value is made on the
//! JavaScript thread, by a closure that runs there, and the call's abort listener is removed
//! there.

use std::sync::Mutex;

use napi::bindgen_prelude::{Either3, Env, FromNapiValue, Object, Result, Unknown, ValueType};
use napi::{JsDeferred, UnknownRef};

use crate::abort::AbortHook;
use crate::errors::{Code, Failure};

/// Makes a promise's value on the JavaScript thread.
pub type Make = Box<dyn for<'env> FnOnce(&'env Env) -> Result<Unknown<'env>> + Send>;

/// A promise's value on its way from the resolver to napi, which fulfils the promise with it:
/// objects by reference (deleted once used), numbers and `undefined` by value (Node-API has no
/// references to them before version 9).
type Settled = Either3<UnknownRef<false>, f64, ()>;

/// Runs on the JavaScript thread when the promise settles: a value, or the error to reject with.
type Resolver = Box<dyn FnOnce(Env) -> Result<Settled> + Send>;

type Deferred = JsDeferred<Settled, Resolver>;

/// A pending promise that any thread may settle, once.
pub struct Settle {
    pending: Mutex<Option<(Deferred, Option<AbortHook>)>>,
}

impl Settle {
    /// A new promise: the handle to settle it, and the promise for JavaScript.
    pub fn new(env: &Env) -> Result<(Self, Object<'_>)> {
        let (deferred, promise) = env.create_deferred::<Settled, Resolver>()?;
        let settle = Self {
            pending: Mutex::new(Some((deferred, None))),
        };
        Ok((settle, promise))
    }

    /// Removes `hook`'s abort listener when the promise settles.
    pub fn set_abort_hook(&self, hook: AbortHook) {
        if let Ok(mut pending) = self.pending.lock()
            && let Some((_, slot)) = pending.as_mut()
        {
            *slot = Some(hook);
        }
    }

    /// Whether the promise is settled (or being settled).
    pub fn is_settled(&self) -> bool {
        self.pending.lock().map_or(true, |p| p.is_none())
    }

    /// Fulfils the promise with what `make` makes on the JavaScript thread. Returns whether
    /// this call settled it.
    pub fn resolve(&self, make: Make) -> bool {
        self.settle(|hook| {
            Box::new(move |env: Env| {
                if let Some(hook) = hook {
                    hook.release(&env);
                }
                keep(make(&env)?)
            })
        })
    }

    /// Rejects the promise with `failure` as an `Error` object (an aborted call's error gets
    /// the signal's reason as its `cause`). Returns whether this call settled it.
    pub fn reject(&self, failure: Failure) -> bool {
        self.settle(|hook| {
            Box::new(move |env: Env| {
                let reason = hook.and_then(|hook| hook.release(&env));
                let cause = reason.filter(|_| failure.code == Code::Aborted);
                // napi rejects with the very object an error refers to.
                Err(napi::Error::from(failure.into_js(&env, cause)))
            })
        })
    }

    fn settle(&self, resolver: impl FnOnce(Option<AbortHook>) -> Resolver) -> bool {
        let pending = self.pending.lock().ok().and_then(|mut p| p.take());
        match pending {
            Some((deferred, hook)) => {
                deferred.resolve(resolver(hook));
                true
            }
            None => false,
        }
    }
}

/// What carries `value` to the promise. (A reference is made without napi's leak check, which
/// would report as a leak the deletion `JsDeferred` does once it has used it.)
fn keep(value: Unknown<'_>) -> Result<Settled> {
    Ok(match value.get_type()? {
        ValueType::Number => Either3::B(f64::from_unknown(value)?),
        ValueType::Undefined => Either3::C(()),
        _ => Either3::A(UnknownRef::<false>::from_unknown(value)?),
    })
}
