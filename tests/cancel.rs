//! Requests that are cancelled, dropped or refused: sync and async. The engine is held inside
//! its first decode (by a decode observer that waits for the test) so every step happens in a
//! known order, not by timing.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use gguf_embed::{Device, EmbedOptions, Embedder, EmbedderOptions, Error};

const TEXTS: [&str; 3] = [
    "the first text of the request",
    "a second one, a little longer than the first",
    "and a third",
];

/// Holds the engine inside its first decode until released; counts every decoded token.
struct Gate {
    decoded: Receiver<usize>,
    release: Sender<()>,
    tokens: Arc<AtomicUsize>,
}

impl Gate {
    /// Waits until the engine is inside its first decode; returns that decode's tokens.
    fn entered(&self) -> usize {
        self.decoded
            .recv_timeout(Duration::from_secs(120))
            .expect("the engine started decoding")
    }

    fn release(&self) {
        self.release.send(()).unwrap();
    }

    fn tokens(&self) -> usize {
        self.tokens.load(Ordering::SeqCst)
    }
}

/// One sequence per decode, so a request of several texts takes several decodes.
fn gated(options: EmbedderOptions) -> (Embedder, Gate) {
    let (decoded_tx, decoded) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let (decoded_tx, release_rx) = (Mutex::new(decoded_tx), Mutex::new(release_rx));
    let tokens = Arc::new(AtomicUsize::new(0));
    let first = AtomicBool::new(true);
    let counted = Arc::clone(&tokens);
    let options = options
        .with_device(Device::Cpu)
        .with_batch_sequences(1)
        .with_decode_observer(move |stats| {
            counted.fetch_add(stats.tokens, Ordering::SeqCst);
            if first.swap(false, Ordering::SeqCst) {
                let _ = decoded_tx.lock().unwrap().send(stats.tokens);
                // Bounded: a test that never releases fails on its own assertions instead.
                let _ = release_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(120));
            }
        });
    let embedder = Embedder::new(common::q8_model(), options).unwrap();
    (
        embedder,
        Gate {
            decoded,
            release,
            tokens,
        },
    )
}

fn all_tokens(embedder: &Embedder, texts: &[&str]) -> usize {
    texts
        .iter()
        .map(|t| {
            embedder
                .count_tokens(t, &gguf_embed::Instruction::None)
                .unwrap()
        })
        .sum()
}

#[test]
fn a_full_queue_refuses_with_busy() {
    let (embedder, gate) = gated(EmbedderOptions::default().with_max_queued(3));
    let options = EmbedOptions::documents();
    let first = embedder.submit(&TEXTS, &options).unwrap();
    gate.entered();
    assert_eq!(embedder.queued(), 3);
    match embedder.submit(&["one more"], &options) {
        Err(Error::Busy { queued, limit }) => assert_eq!((queued, limit), (3, 3)),
        other => panic!("expected Busy, got {other:?}"),
    }
    gate.release();
    assert_eq!(first.wait().unwrap().len(), 3);
    // The queue drained: the same request is accepted now.
    assert_eq!(embedder.embed(&["one more"], &options).unwrap().len(), 1);
    assert_eq!(embedder.queued(), 0);
}

#[test]
fn a_canceller_stops_a_waiting_request_with_cancelled() {
    let (embedder, gate) = gated(EmbedderOptions::default());
    let pending = embedder.submit(&TEXTS, &EmbedOptions::documents()).unwrap();
    let canceller = pending.canceller();
    let waiter = std::thread::spawn(move || pending.wait());
    let first_decode = gate.entered();
    canceller.cancel();
    gate.release();
    match waiter.join().unwrap() {
        Err(Error::Cancelled) => {}
        other => panic!("expected Cancelled, got {other:?}"),
    }
    // Only the decode that was running when it was cancelled ran.
    assert_eq!(gate.tokens(), first_decode);
    assert!(first_decode < all_tokens(&embedder, &TEXTS));
    assert_eq!(embedder.queued(), 0);
    // The engine serves the next request.
    assert_eq!(
        embedder
            .embed(&["next"], &EmbedOptions::documents())
            .unwrap()
            .len(),
        1
    );
}

/// A canceller made before the call (as the Node package makes one for an `AbortSignal`)
/// cancels a request that is queued behind the engine's decode, with no window between queueing
/// and taking the request's own canceller; one cancelled beforehand runs nothing at all.
#[test]
fn a_canceller_made_before_the_call_cancels_it() {
    let (embedder, gate) = gated(EmbedderOptions::default());
    let first = embedder
        .submit(&["held by the engine"], &EmbedOptions::documents())
        .unwrap();
    let held_tokens = gate.entered();
    let canceller = gguf_embed::Canceller::new();
    let queued = embedder
        .submit_with_canceller(&TEXTS, &EmbedOptions::documents(), &canceller)
        .unwrap();
    let early = gguf_embed::Canceller::new();
    early.cancel();
    let never = embedder
        .submit_with_canceller(&TEXTS, &EmbedOptions::documents(), &early)
        .unwrap();
    canceller.cancel();
    gate.release();
    assert_eq!(first.wait().unwrap().len(), 1);
    for pending in [queued, never] {
        match pending.wait() {
            Err(Error::Cancelled) => {}
            other => panic!("expected Cancelled, got {other:?}"),
        }
    }
    assert_eq!(gate.tokens(), held_tokens, "cancelled texts were decoded");
    assert_eq!(embedder.queued(), 0);
}

#[test]
fn dropping_a_pending_request_stops_its_work() {
    let (embedder, gate) = gated(EmbedderOptions::default());
    let pending = embedder.submit(&TEXTS, &EmbedOptions::documents()).unwrap();
    let first_decode = gate.entered();
    drop(pending);
    gate.release();
    let after = embedder
        .embed(&["next"], &EmbedOptions::documents())
        .unwrap();
    assert_eq!(
        gate.tokens(),
        first_decode + after[0].tokens,
        "the dropped request's remaining texts were decoded"
    );
    assert_eq!(embedder.queued(), 0);
}

/// Wakes by unparking the thread that polls.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The smallest executor there is: proves the future needs no runtime.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[test]
fn the_async_embed_needs_no_runtime_and_matches_the_blocking_one() {
    let embedder = Embedder::new(
        common::q8_model(),
        EmbedderOptions::default().with_device(Device::Cpu),
    )
    .unwrap();
    let options = EmbedOptions::documents();
    let blocking = embedder.embed(&TEXTS, &options).unwrap();
    let awaited = block_on(embedder.embed_async(&TEXTS, &options)).unwrap();
    assert_eq!(blocking, awaited);
    let submitted = block_on(embedder.submit(&TEXTS, &options).unwrap()).unwrap();
    assert_eq!(blocking, submitted);
}

#[test]
fn dropping_an_async_request_stops_its_work() {
    let (embedder, gate) = gated(EmbedderOptions::default());
    let options = EmbedOptions::documents();
    {
        let mut future = pin!(embedder.embed_async(&TEXTS, &options));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        gate.entered();
        // The future goes out of scope here, unresolved.
    }
    let first_decode = gate.tokens();
    gate.release();
    let after = embedder.embed(&["next"], &options).unwrap();
    assert_eq!(gate.tokens(), first_decode + after[0].tokens);
    assert_eq!(embedder.queued(), 0);
}
