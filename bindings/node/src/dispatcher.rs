//! The embedder's own thread in front of the engine (the dispatcher).
//!
//! It owns the library's `Embedder`, takes the calls in the order JavaScript made them,
//! tokenizes their texts (so the JavaScript thread never does) and queues them for the engine
//! thread, where concurrent calls share decodes. Nobody then waits: a [`Completion`] is woken by
//! the engine when the vectors are ready and settles the promise through its thread-safe
//! function. No libuv pool thread is used, so none is held while the engine works (the pool's
//! four threads also serve the app's file, DNS and zlib work).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;

use gguf_embed::{EmbedOptions, Embedding, Instruction, PendingEmbeddings};
use napi::bindgen_prelude::{Env, Float32ArraySlice, ToNapiValue};

use crate::calls::Call;
use crate::errors::{Code, Failure};

/// Work for the dispatcher.
pub enum Request {
    /// Embed `texts`; `one` resolves to a single `Float32Array` (a string was given).
    Embed {
        texts: Vec<String>,
        options: EmbedOptions,
        one: bool,
        call: Arc<Call>,
    },
    /// Count the tokens of `text` as embedded with `instruction`.
    CountTokens {
        text: String,
        instruction: Instruction,
        call: Arc<Call>,
    },
}

impl Request {
    fn call(&self) -> &Arc<Call> {
        match self {
            Request::Embed { call, .. } | Request::CountTokens { call, .. } => call,
        }
    }
}

/// Starts the dispatcher for `embedder`; it runs until the sender is dropped and every request
/// sent before has been handled, then drops the embedder (which stops the engine thread).
pub fn spawn(embedder: gguf_embed::Embedder) -> std::io::Result<(Sender<Request>, JoinHandle<()>)> {
    let (requests, receiver) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("gguf-embed-node".into())
        .spawn(move || run(embedder, receiver))?;
    Ok((requests, handle))
}

fn run(embedder: gguf_embed::Embedder, requests: Receiver<Request>) {
    for request in requests {
        if request.call().is_settled() {
            // Aborted or closed before its turn: nothing to do.
            continue;
        }
        let call = Arc::clone(request.call());
        let handled = catch_unwind(AssertUnwindSafe(|| handle(&embedder, request)));
        if handled.is_err() {
            call.reject(Failure::new(
                Code::Internal,
                "gguf-embed failed unexpectedly (a bug: please report it); the embedder still works",
            ));
        }
    }
}

fn handle(embedder: &gguf_embed::Embedder, request: Request) {
    match request {
        Request::Embed {
            texts,
            options,
            one,
            call,
        } => match embedder.submit_with_canceller(&texts, &options, &call.canceller) {
            Ok(pending) => {
                drop(texts);
                Completion::start(pending, call, one);
            }
            Err(e) => call.reject(e.into()),
        },
        Request::CountTokens {
            text,
            instruction,
            call,
        } => match embedder.count_tokens(&text, &instruction) {
            Ok(count) => call.resolve(Box::new(move |env: &Env| (count as u32).into_unknown(env))),
            Err(e) => call.reject(e.into()),
        },
    }
}

/// Settles a call when its vectors arrive: the engine thread's reply wakes it (a waker, not a
/// waiting thread), and it settles the promise right there.
struct Completion {
    pending: Mutex<Option<PendingEmbeddings>>,
    call: Arc<Call>,
    one: bool,
}

impl Completion {
    fn start(pending: PendingEmbeddings, call: Arc<Call>, one: bool) {
        Arc::new(Self {
            pending: Mutex::new(Some(pending)),
            call,
            one,
        })
        .poll();
    }

    /// Polls the pending result (registering this completion as its waker) and settles the
    /// call once it is there.
    fn poll(self: Arc<Self>) {
        let waker = Waker::from(Arc::clone(&self));
        let mut slot = match self.pending.lock() {
            Ok(slot) => slot,
            Err(_) => return,
        };
        let Some(pending) = slot.as_mut() else {
            return;
        };
        let Poll::Ready(result) = Pin::new(pending).poll(&mut Context::from_waker(&waker)) else {
            return;
        };
        *slot = None;
        drop(slot);
        match result {
            Ok(embeddings) => self.call.resolve(vectors(embeddings, self.one)),
            Err(e) => self.call.reject(e.into()),
        }
    }
}

impl Wake for Completion {
    fn wake(self: Arc<Self>) {
        self.poll();
    }
}

/// Makes the result on the JavaScript thread: each vector copied once into a `Float32Array`
/// whose memory V8 owns (Electron refuses external buffers), in an array unless `one`.
fn vectors(embeddings: Vec<Embedding>, one: bool) -> crate::settle::Make {
    Box::new(move |env: &Env| {
        if one && let Some(e) = embeddings.first() {
            return Float32ArraySlice::copy_from(env, &e.vector)?.into_unknown(env);
        }
        let mut array = env.create_array(embeddings.len() as u32)?;
        for (i, e) in embeddings.iter().enumerate() {
            array.set(i as u32, Float32ArraySlice::copy_from(env, &e.vector)?)?;
        }
        array.into_unknown(env)
    })
}
