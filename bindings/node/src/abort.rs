//! `AbortSignal`s: a call rejects with an `AbortError` as soon as its signal fires (and the
//! work it queued is cancelled); the listener it added is removed when it settles, so one
//! long-lived signal can serve many calls without collecting listeners.

use napi::bindgen_prelude::{
    Env, FnArgs, FromNapiValue, Function, JsObjectValue, Object, Result, Unknown, ValueType,
};
use napi::{JsValue, UnknownRef};

use crate::errors::Failure;

/// The listener a call added to its signal.
pub struct AbortHook {
    signal: UnknownRef<false>,
    listener: UnknownRef<false>,
}

impl AbortHook {
    /// Removes the listener (on the JavaScript thread) and returns the signal's `reason` if it
    /// has fired.
    pub fn release(self, env: &Env) -> Option<Unknown<'_>> {
        let mut reason = None;
        let signal = self.signal.get_value(env).and_then(Object::from_unknown);
        if let (Ok(signal), Ok(listener)) = (signal, self.listener.get_value(env)) {
            // Best effort: a signal whose methods were tampered with keeps its listener.
            if let Ok(remove) = signal
                .get_named_property::<Function<FnArgs<(&str, Unknown)>, Unknown>>(
                    "removeEventListener",
                )
            {
                let _ = remove.apply(signal, FnArgs::from(("abort", listener)));
            }
            if signal
                .get_named_property::<bool>("aborted")
                .unwrap_or(false)
            {
                reason = signal.get_named_property::<Unknown>("reason").ok();
            }
        }
        let _ = self.signal.unref(env);
        let _ = self.listener.unref(env);
        reason
    }
}

/// Reads an optional `signal` option: `None` when absent, an error when it is not an
/// `AbortSignal`, and `Err(aborted)` when it has already fired.
pub fn read<'env>(
    signal: Option<Unknown<'env>>,
) -> std::result::Result<Option<Object<'env>>, Failure> {
    let Some(signal) = signal else {
        return Ok(None);
    };
    match signal.get_type() {
        Ok(ValueType::Undefined | ValueType::Null) => return Ok(None),
        Ok(ValueType::Object) => {}
        _ => return Err(not_a_signal()),
    }
    let object = Object::from_unknown(signal).map_err(|_| not_a_signal())?;
    let aborted = object
        .get_named_property::<Unknown>("aborted")
        .and_then(|a| a.get_type())
        .map_err(|_| not_a_signal())?;
    let listens = object
        .get_named_property::<Unknown>("addEventListener")
        .and_then(|f| f.get_type())
        .map_err(|_| not_a_signal())?;
    if aborted != ValueType::Boolean || listens != ValueType::Function {
        return Err(not_a_signal());
    }
    if object
        .get_named_property::<bool>("aborted")
        .unwrap_or(false)
    {
        return Err(Failure::aborted());
    }
    Ok(Some(object))
}

fn not_a_signal() -> Failure {
    Failure::type_error("options.signal must be an AbortSignal")
}

/// Calls `on_abort` on the JavaScript thread when `signal` fires (once).
pub fn listen(env: &Env, signal: Object<'_>, on_abort: impl Fn() + 'static) -> Result<AbortHook> {
    let listener = env.create_function_from_closure::<(), (), _>("onAbort", move |_| {
        on_abort();
        Ok(())
    })?;
    let mut options = Object::new(env)?;
    options.set_named_property("once", true)?;
    let add = signal
        .get_named_property::<Function<FnArgs<(&str, Function<(), ()>, Object)>, Unknown>>(
            "addEventListener",
        )?;
    add.apply(signal, FnArgs::from(("abort", listener, options)))?;
    Ok(AbortHook {
        signal: UnknownRef::<false>::from_unknown(signal.to_unknown())?,
        listener: UnknownRef::<false>::from_unknown(listener.to_unknown())?,
    })
}
