//! The `Embedder` class.
//!
//! Every method returns a promise at once; the work runs on the embedder's own threads (see
//! `dispatcher`), never on the JavaScript thread or the libuv pool. Errors reject the promise;
//! none is thrown.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;

use gguf_embed::{EmbedderOptions, Truncation};
use napi::JsValue;
use napi::bindgen_prelude::{
    Array, Env, FromNapiValue, Object, Result, ToNapiValue, Unknown, ValueType,
};
use napi_derive::napi;

use crate::abort;
use crate::calls::{Call, Registry};
use crate::dispatcher::{self, Request};
use crate::errors::{Code, Failure};
use crate::load::{self, LoadRequest, Loaded};
use crate::options::{self, EmbedCallOptions, LoadOptions, TokenOptions};
use crate::settle::Settle;
use crate::stats::Stats;

/// A Qwen3-Embedding model, loaded once, that embeds texts without blocking the app.
///
/// Calls made at the same time share the engine's batches. Load one with
/// `await Embedder.load(model, options)`; `close()` frees it.
#[napi]
pub struct Embedder {
    /// `None` once closed.
    front: Option<Front>,
    calls: Arc<Registry>,
    info: EmbedderInfo,
    truncation: Truncation,
    stats: Arc<Stats>,
}

/// What an open embedder runs.
struct Front {
    /// The dispatcher's queue.
    requests: Sender<Request>,
    dispatcher: JoinHandle<()>,
    /// A handle on the engine, for its queue depth. The engine thread stops when the last
    /// handle is dropped, after the decode under way: that waits, so it never happens on the
    /// JavaScript thread (see [`Front::stop`]).
    engine: gguf_embed::Embedder,
}

impl Front {
    /// Stops taking requests and, on a thread of its own, lets the dispatcher finish what was
    /// sent (requests already settled are skipped), stops the engine, then runs `then`.
    fn stop(self, then: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let Front {
            requests,
            dispatcher,
            engine,
        } = self;
        drop(requests);
        std::thread::Builder::new()
            .name("gguf-embed-close".into())
            .spawn(move || {
                let _ = dispatcher.join();
                drop(engine);
                then();
            })
            .map(drop)
    }
}

/// What `embedder.info` tells about the model and its settings.
#[napi(object, object_from_js = false)]
#[derive(Clone)]
pub struct EmbedderInfo {
    /// The model file (a path in the Hugging Face cache for a catalog model).
    pub path: String,
    /// The full vector size (1024 for Qwen3-Embedding-0.6B).
    pub dimensions: u32,
    /// The quantization of the weights (`Q8_0`, `F16`...), when the file says.
    pub quantization: Option<String>,
    /// The model's parameter count.
    pub parameters: f64,
    /// The context the model was trained for, in tokens.
    pub context_length: u32,
    /// The token limit per text.
    pub max_tokens: u32,
    /// What happens to longer texts: `"end"`, `"start"` or `"error"`.
    #[napi(ts_type = "'end' | 'start' | 'error'")]
    pub truncate: String,
    /// The engine's CPU threads.
    pub threads: u32,
    /// Calls not settled yet.
    pub pending: u32,
    /// Texts waiting for the engine or being embedded.
    pub queued: u32,
    /// Decodes the engine has run (texts of calls made at the same time share them).
    pub decodes: f64,
    /// Whether `close()` was called.
    pub closed: bool,
}

#[napi]
impl Embedder {
    /// Loads a model: a `.gguf` path, a catalog name (`"Qwen/Qwen3-Embedding-0.6B"`,
    /// `"qwen3-embedding-4b:q4_k_m"`) or `"hf:OWNER/REPO/FILE.gguf"`, found in (or downloaded
    /// once to) the Hugging Face cache, as the `gguf-embed` CLI does.
    #[napi(
        ts_args_type = "model: string, options?: LoadOptions",
        ts_return_type = "Promise<Embedder>"
    )]
    pub fn load<'env>(
        env: &'env Env,
        model: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> Result<Object<'env>> {
        let (settle, promise) = Settle::new(env)?;
        let call = Registry::standalone(settle);
        if let Err(failure) = start_load(env, &call, model, options) {
            call.reject(failure);
        }
        Ok(promise)
    }

    /// Embeds a text (resolves to one `Float32Array`) or an array of texts (an array of them,
    /// in order) as documents, or as queries with `instruction` or `task`.
    #[napi(
        ts_generic_types = "T extends string | readonly string[]",
        ts_args_type = "texts: T, options?: EmbedOptions",
        ts_return_type = "Promise<T extends string ? Float32Array : Float32Array[]>"
    )]
    pub fn embed<'env>(
        &self,
        env: &'env Env,
        texts: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> Result<Object<'env>> {
        self.call(env, |call| {
            let (texts, one) = read_texts(texts)?;
            self.embed_request(env, call, texts, one, options, false)
        })
    }

    /// Embeds a query: with the web-search instruction unless `task` or `instruction` says
    /// otherwise.
    #[napi(
        ts_args_type = "query: string, options?: EmbedOptions",
        ts_return_type = "Promise<Float32Array>"
    )]
    pub fn embed_query<'env>(
        &self,
        env: &'env Env,
        query: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> Result<Object<'env>> {
        self.call(env, |call| {
            let text = read_string(query, "query")?;
            self.embed_request(env, call, vec![text], true, options, true)
        })
    }

    /// Embeds documents (no instruction): one `Float32Array` per text, in order.
    #[napi(
        ts_args_type = "documents: readonly string[], options?: EmbedOptions",
        ts_return_type = "Promise<Float32Array[]>"
    )]
    pub fn embed_documents<'env>(
        &self,
        env: &'env Env,
        documents: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> Result<Object<'env>> {
        self.call(env, |call| {
            let texts = read_array(documents, "documents")?;
            self.embed_request(env, call, texts, false, options, false)
        })
    }

    /// How many tokens `text` has as embedded (instruction and end-of-text token included,
    /// before truncation).
    #[napi(
        ts_args_type = "text: string, options?: TokenOptions",
        ts_return_type = "Promise<number>"
    )]
    pub fn count_tokens<'env>(
        &self,
        env: &'env Env,
        text: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> Result<Object<'env>> {
        self.call(env, |call| {
            let text = read_string(text, "text")?;
            let options: Option<TokenOptions> = options::read(options, "options")?;
            let options = options.unwrap_or(TokenOptions {
                instruction: None,
                task: None,
            });
            let instruction =
                options::instruction(options.task.as_deref(), options.instruction, false)?;
            Ok(Request::CountTokens {
                text,
                instruction,
                call: Arc::clone(call),
            })
        })
    }

    /// The model and the settings in use.
    #[napi(getter)]
    pub fn info(&self) -> EmbedderInfo {
        EmbedderInfo {
            pending: self.calls.len() as u32,
            queued: self.front.as_ref().map_or(0, |f| f.engine.queued() as u32),
            decodes: self.stats.decodes() as f64,
            closed: self.front.is_none(),
            ..self.info.clone()
        }
    }

    /// Frees the model. Calls still pending reject with a `CLOSED` error, and so do later
    /// ones; the promise resolves once the engine has stopped and its memory is released.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&mut self, env: &'env Env) -> Result<Object<'env>> {
        let (settle, promise) = Settle::new(env)?;
        let call = Registry::standalone(settle);
        let Some(front) = self.front.take() else {
            call.resolve(Box::new(|env: &Env| ().into_unknown(env)));
            return Ok(promise);
        };
        self.calls.reject_all(Failure::closed);
        let done = Arc::clone(&call);
        if let Err(e) = front.stop(move || done.resolve(Box::new(|env: &Env| ().into_unknown(env))))
        {
            call.reject(Failure::new(
                Code::Engine,
                format!("cannot start a thread: {e}"),
            ));
        }
        Ok(promise)
    }

    /// For the tests only: holds the engine after its next decode, before it sends any result,
    /// until called again with `false`.
    #[napi(js_name = "_pauseForTests", skip_typescript)]
    pub fn pause_for_tests(&self, paused: bool) {
        self.stats.pause(paused);
    }
}

impl Embedder {
    /// Runs one call: a promise that `request` settles through the dispatcher, or rejects at
    /// once when the embedder is closed or the arguments are wrong.
    fn call<'env>(
        &self,
        env: &'env Env,
        request: impl FnOnce(&Arc<Call>) -> std::result::Result<Request, Failure>,
    ) -> Result<Object<'env>> {
        let (settle, promise) = Settle::new(env)?;
        let call = self.calls.add(settle);
        let Some(Front { requests, .. }) = &self.front else {
            call.reject(Failure::closed());
            return Ok(promise);
        };
        match request(&call) {
            Ok(request) => {
                if requests.send(request).is_err() {
                    call.reject(Failure::new(Code::Engine, "the embedding engine stopped"));
                }
            }
            Err(failure) => call.reject(failure),
        }
        Ok(promise)
    }

    /// An embed request, its options checked and its abort signal listened to.
    fn embed_request(
        &self,
        env: &Env,
        call: &Arc<Call>,
        texts: Vec<String>,
        one: bool,
        options: Option<Unknown<'_>>,
        query: bool,
    ) -> std::result::Result<Request, Failure> {
        let options: Option<EmbedCallOptions> = options::read(options, "options")?;
        let options = options.unwrap_or(EmbedCallOptions {
            instruction: None,
            task: None,
            dimensions: None,
            normalize: None,
            signal: None,
        });
        let embed_options = options::embed_options(&options, self.truncation, query)?;
        if let Some(signal) = abort::read(options.signal)? {
            let target = Arc::downgrade(call);
            let hook = abort::listen(env, signal, move || {
                if let Some(call) = target.upgrade() {
                    call.reject(Failure::aborted());
                }
            })?;
            call.settle.set_abort_hook(hook);
        }
        Ok(Request::Embed {
            texts,
            options: embed_options,
            one,
            call: Arc::clone(call),
        })
    }
}

impl Drop for Embedder {
    /// An embedder collected without `close()`: its pending calls still complete (the
    /// dispatcher and the engine finish them on their own threads), and nothing here waits.
    fn drop(&mut self) {
        if let Some(front) = self.front.take() {
            let _ = front.stop(|| {});
        }
    }
}

/// Checks the load arguments on the JavaScript thread and starts the loading thread.
fn start_load(
    env: &Env,
    call: &Arc<Call>,
    model: Unknown<'_>,
    options: Option<Unknown<'_>>,
) -> std::result::Result<(), Failure> {
    let spec = read_string(model, "model")?;
    let options: Option<LoadOptions> = options::read(options, "options")?;
    let Some(options) = options else {
        return spawn_load(call, request(spec, None)?, None, Arc::default());
    };
    let cancelled = Arc::new(AtomicBool::new(false));
    if let Some(signal) = abort::read(options.signal)? {
        let (target, flag) = (Arc::downgrade(call), Arc::clone(&cancelled));
        let hook = abort::listen(env, signal, move || {
            flag.store(true, Ordering::Relaxed);
            if let Some(call) = target.upgrade() {
                call.reject(Failure::aborted());
            }
        })?;
        call.settle.set_abort_hook(hook);
    }
    let progress = match &options.on_progress {
        Some(f) => Some(
            f.build_threadsafe_function()
                .callee_handled::<false>()
                .build()?,
        ),
        None => None,
    };
    let request = request(spec, Some(&options))?;
    spawn_load(call, request, progress, cancelled)
}

/// The load request `options` describe.
fn request(
    spec: String,
    options: Option<&LoadOptions<'_>>,
) -> std::result::Result<LoadRequest, Failure> {
    let field = |f: fn(&LoadOptions<'_>) -> Option<f64>| options.and_then(f);
    let threads = options::whole(field(|o| o.threads), "threads", 1..=1024)?
        .unwrap_or(crate::default_threads() as usize);
    let max_tokens = options::whole(field(|o| o.max_tokens), "maxTokens", 1..=u32::MAX as usize)?
        .unwrap_or(gguf_embed::DEFAULT_MAX_TOKENS);
    let truncation = options::truncation(options.and_then(|o| o.truncate.as_deref()))?;
    let device = options::device(options.and_then(|o| o.device.as_deref()))?;
    let stats = Arc::new(Stats::default());
    let observer = Arc::clone(&stats);
    Ok(LoadRequest {
        spec,
        quant: options
            .and_then(|o| o.quant.clone())
            .unwrap_or_else(|| "Q8_0".into()),
        offline: options.and_then(|o| o.offline).unwrap_or(false),
        cache_dir: options.and_then(|o| o.cache_dir.clone()).map(PathBuf::from),
        options: EmbedderOptions::default()
            .with_device(device)
            .with_threads(threads)
            .with_max_tokens(max_tokens)
            .with_decode_observer(move |_| observer.after_decode()),
        stats,
        threads,
        max_tokens,
        truncation,
    })
}

fn spawn_load(
    call: &Arc<Call>,
    request: LoadRequest,
    progress: Option<load::ProgressCallback>,
    cancelled: Arc<AtomicBool>,
) -> std::result::Result<(), Failure> {
    let call = Arc::clone(call);
    std::thread::Builder::new()
        .name("gguf-embed-load".into())
        .spawn(move || match load::load(request, progress, cancelled) {
            Ok(loaded) => match ready(loaded) {
                Ok(embedder) => call.resolve(Box::new(move |env: &Env| embedder.into_unknown(env))),
                Err(failure) => call.reject(failure),
            },
            Err(e) => call.reject(e.into()),
        })
        .map(drop)
        .map_err(|e| Failure::new(Code::Engine, format!("cannot start a thread: {e}")))
}

/// The JavaScript object for a loaded model, its dispatcher started.
fn ready(loaded: Loaded) -> std::result::Result<Embedder, Failure> {
    let Loaded { embedder, request } = loaded;
    let model = embedder.info();
    let info = EmbedderInfo {
        path: model.path.display().to_string(),
        dimensions: embedder.dimensions() as u32,
        quantization: model.file_type.clone(),
        parameters: model.parameters as f64,
        context_length: model.context_length,
        max_tokens: request.max_tokens as u32,
        truncate: match request.truncation {
            Truncation::Start => "start",
            Truncation::Error => "error",
            _ => "end",
        }
        .into(),
        threads: request.threads as u32,
        pending: 0,
        queued: 0,
        decodes: 0.0,
        closed: false,
    };
    let (requests, dispatcher) = dispatcher::spawn(embedder.clone())
        .map_err(|e| Failure::new(Code::Engine, format!("cannot start a thread: {e}")))?;
    Ok(Embedder {
        front: Some(Front {
            requests,
            dispatcher,
            engine: embedder,
        }),
        calls: Arc::default(),
        info,
        truncation: request.truncation,
        stats: request.stats,
    })
}

/// `texts`: a string (`one`), or an array of strings.
fn read_texts(texts: Unknown<'_>) -> std::result::Result<(Vec<String>, bool), Failure> {
    if matches!(texts.get_type(), Ok(ValueType::String)) {
        return Ok((vec![read_string(texts, "texts")?], true));
    }
    Ok((read_array(texts, "texts")?, false))
}

fn read_string(value: Unknown<'_>, name: &str) -> std::result::Result<String, Failure> {
    match value.get_type() {
        Ok(ValueType::String) => {
            String::from_unknown(value).map_err(|e| Failure::invalid(e.reason))
        }
        _ => Err(Failure::type_error(format!(
            "{name} must be a string, not {}",
            describe(&value)
        ))),
    }
}

/// An array of strings; the first item that is not one is named in the error.
fn read_array(value: Unknown<'_>, name: &str) -> std::result::Result<Vec<String>, Failure> {
    let not_array = || {
        Failure::type_error(format!(
            "{name} must be a string or an array of strings, not {}",
            describe(&value)
        ))
    };
    if !value.is_array().unwrap_or(false) {
        return Err(not_array());
    }
    let array = Array::from_unknown(value).map_err(|_| not_array())?;
    let mut out = Vec::with_capacity(array.len() as usize);
    for i in 0..array.len() {
        let item: Unknown = array
            .get(i)
            .map_err(|e| Failure::invalid(e.reason))?
            .ok_or_else(|| Failure::type_error(format!("{name}[{i}] is missing")))?;
        if !matches!(item.get_type(), Ok(ValueType::String)) {
            return Err(Failure::type_error(format!(
                "{name}[{i}] is {}, not a string: every text must be a string",
                describe(&item)
            )));
        }
        out.push(String::from_unknown(item).map_err(|e| Failure::invalid(e.reason))?);
    }
    Ok(out)
}

/// A value's type for messages: `undefined`, `null`, `a number`, `an object`...
fn describe(value: &Unknown<'_>) -> &'static str {
    match value.get_type() {
        Ok(ValueType::Undefined) => "undefined",
        Ok(ValueType::Null) => "null",
        Ok(ValueType::Boolean) => "a boolean",
        Ok(ValueType::Number) => "a number",
        Ok(ValueType::String) => "a string",
        Ok(ValueType::Symbol) => "a symbol",
        Ok(ValueType::Function) => "a function",
        Ok(ValueType::Object) if value.is_array().unwrap_or(false) => "an array",
        Ok(ValueType::Object) => "an object",
        _ => "a value of another type",
    }
}
