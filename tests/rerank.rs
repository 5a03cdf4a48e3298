//! The reranker against the reference: Hugging Face transformers and tokenizers scoring the
//! same random-weight Qwen3 causal LM by Qwen3-Reranker's rule (models/make_reranker_fixtures.py),
//! through llama.cpp's converter layout and a head-less file. Also: truncation, order, top-n,
//! batch independence, cancellation, and the refusals between embedder and reranker files.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::rerankers::{
    Pair, headless_f32, headless_q8, pairs, reranker_f32, reranker_q8, truncated_pairs,
};
use common::{f32_model, q8_model};
use gguf_embed::{
    Device, Embedder, EmbedderOptions, Error, ModelKind, RerankOptions, RerankScore, Reranker,
    Truncation,
};

/// F32 scores (P(yes)) within this of transformers' (the bar).
const F32_SCORE_TOLERANCE: f64 = 1e-4;
/// F32 log-odds within this of transformers'.
const F32_LOG_ODDS_TOLERANCE: f64 = 1e-4;
/// Q8_0: the weights are the same numbers (the fixtures chose them so), but llama.cpp
/// quantizes the activations to 8 bits before each matrix product and keeps keys and values
/// in F16. Measured over the cases: log-odds within 0.074 and scores within 0.011 of the
/// reference.
const Q8_0_LOG_ODDS_TOLERANCE: f64 = 0.1;
const Q8_0_SCORE_TOLERANCE: f64 = 0.015;

fn options() -> EmbedderOptions {
    EmbedderOptions::default()
        .with_device(Device::Cpu)
        .with_threads(2)
}

fn load(path: &Path) -> Reranker {
    Reranker::new(path, options()).unwrap()
}

/// Scores one pair alone.
fn score_alone(reranker: &Reranker, pair: &Pair) -> RerankScore {
    let mut out = reranker
        .rerank(&pair.query, &[&pair.document], &pair.options())
        .unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// The largest differences from the reference (log-odds, score) over the pairs.
fn worst(reranker: &Reranker, pairs: &[Pair]) -> (f64, f64) {
    let mut worst = (0f64, 0f64);
    for pair in pairs {
        let got = score_alone(reranker, pair);
        assert_eq!(got.tokens, pair.token_ids.len(), "{}", pair.name);
        let d_log = (f64::from(got.log_odds) - pair.log_odds).abs();
        let d_score = (f64::from(got.score) - pair.score).abs();
        eprintln!(
            "{:<20} log-odds {:+.6} (ref {:+.6}) score {:.6} (ref {:.6})",
            pair.name, got.log_odds, pair.log_odds, got.score, pair.score
        );
        worst = (worst.0.max(d_log), worst.1.max(d_score));
    }
    eprintln!("worst: log-odds {:.2e}, score {:.2e}", worst.0, worst.1);
    worst
}

#[test]
fn token_ids_are_the_reference_tokenizers() {
    let reranker = load(&reranker_q8());
    for pair in pairs().iter().chain(&truncated_pairs()) {
        let ids = reranker
            .token_ids(&pair.query, &pair.document, &pair.options())
            .unwrap();
        assert_eq!(ids, pair.token_ids, "{}", pair.name);
    }
}

#[test]
fn f32_scores_match_transformers() {
    let reranker = load(&reranker_f32());
    assert!(reranker.head_source().starts_with("cls.output.weight"));
    let (log_odds, score) = worst(&reranker, &pairs());
    assert!(
        log_odds <= F32_LOG_ODDS_TOLERANCE,
        "log-odds off by {log_odds}"
    );
    assert!(score <= F32_SCORE_TOLERANCE, "score off by {score}");
}

#[test]
fn q8_0_scores_are_within_its_measured_error() {
    let reranker = load(&reranker_q8());
    let (log_odds, score) = worst(&reranker, &pairs());
    assert!(
        log_odds <= Q8_0_LOG_ODDS_TOLERANCE,
        "log-odds off by {log_odds}"
    );
    assert!(score <= Q8_0_SCORE_TOLERANCE, "score off by {score}");
}

#[test]
fn the_fixture_scores_spread_over_the_unit_interval() {
    // Otherwise the tests above would pass for a reranker that ignores its input.
    let scores: Vec<f64> = pairs().iter().map(|p| p.score).collect();
    let min = scores.iter().copied().fold(1.0, f64::min);
    let max = scores.iter().copied().fold(0.0, f64::max);
    assert!(min < 0.2 && max > 0.8, "scores from {min} to {max}");
}

#[test]
fn a_headless_file_scores_from_its_tied_embeddings() {
    let headless = load(&headless_f32());
    assert!(
        headless.head_source().starts_with("token_embd.weight"),
        "{}",
        headless.head_source()
    );
    assert_eq!(headless.info().kind, ModelKind::Reranker, "by its name");
    let (log_odds, score) = worst(&headless, &pairs());
    assert!(
        log_odds <= F32_LOG_ODDS_TOLERANCE,
        "log-odds off by {log_odds}"
    );
    assert!(score <= F32_SCORE_TOLERANCE, "score off by {score}");
    // The same rows as the converter's head, so the same scores bit for bit.
    let (with_head, without) = (load(&reranker_q8()), load(&headless_q8()));
    for pair in &pairs() {
        assert_eq!(
            score_alone(&with_head, pair),
            score_alone(&without, pair),
            "{}",
            pair.name
        );
    }
}

#[test]
fn truncation_cuts_the_document_as_qwens_reference_does() {
    let reranker = load(&reranker_f32());
    for pair in &truncated_pairs() {
        let got = score_alone(&reranker, pair);
        assert!(got.truncated, "{}", pair.name);
        assert_eq!(got.tokens, pair.max_tokens.unwrap().min(got.tokens));
        assert!((f64::from(got.log_odds) - pair.log_odds).abs() <= F32_LOG_ODDS_TOLERANCE);
        assert!((f64::from(got.score) - pair.score).abs() <= F32_SCORE_TOLERANCE);
    }
    // The start cut instead: the prompt up to the document stays, then the document's last
    // tokens, then the suffix.
    let long = pairs().into_iter().find(|p| p.name == "long").unwrap();
    let whole = &long.token_ids;
    let cut = |truncation| {
        let options = RerankOptions::default()
            .with_max_tokens(96)
            .with_truncation(truncation);
        reranker
            .token_ids(&long.query, &long.document, &options)
            .unwrap()
    };
    let (end, start) = (cut(Truncation::End), cut(Truncation::Start));
    assert_eq!(start.len(), 96);
    let kept = start.iter().zip(&end).take_while(|(a, b)| a == b).count();
    assert!(
        (40..80).contains(&kept),
        "{kept} tokens before the document"
    );
    assert_eq!(
        start[..kept],
        whole[..kept],
        "the prompt and query are kept"
    );
    assert_eq!(
        start[kept..],
        whole[whole.len() - (96 - kept)..],
        "then the document's end and the suffix"
    );
}

#[test]
fn pairs_over_the_limit_fail_when_asked_and_a_query_must_fit() {
    let reranker = load(&reranker_q8());
    let long = pairs().into_iter().find(|p| p.name == "long").unwrap();
    let strict = RerankOptions::default()
        .with_max_tokens(96)
        .with_truncation(Truncation::Error);
    let err = reranker
        .rerank(&long.query, &["short", long.document.as_str()], &strict)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLong {
                index: 1,
                max: 96,
                ..
            }
        ),
        "{err}"
    );
    let query = "why ".repeat(200);
    let err = reranker
        .rerank(
            &query,
            &["doc"],
            &RerankOptions::default().with_max_tokens(128),
        )
        .unwrap_err();
    assert!(matches!(err, Error::QueryTooLong { max: 128, .. }), "{err}");
    assert!(err.to_string().contains("shorten the query"), "{err}");
}

#[test]
fn results_come_best_first_and_top_n_keeps_the_best() {
    let reranker = load(&reranker_q8());
    let all = pairs();
    let france: Vec<&Pair> = all
        .iter()
        .filter(|p| p.query == all[0].query && p.instruction.is_none())
        .collect();
    let docs: Vec<&str> = france.iter().map(|p| p.document.as_str()).collect();
    let ranked = reranker
        .rerank(&france[0].query, &docs, &RerankOptions::default())
        .unwrap();
    assert_eq!(ranked.len(), docs.len());
    assert!(ranked.windows(2).all(|w| w[0].log_odds >= w[1].log_odds));
    let mut indices: Vec<usize> = ranked.iter().map(|r| r.index).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..docs.len()).collect::<Vec<_>>());
    // The reference agrees on the order.
    let mut expected: Vec<usize> = (0..docs.len()).collect();
    expected.sort_by(|&a, &b| france[b].log_odds.total_cmp(&france[a].log_odds));
    assert_eq!(ranked.iter().map(|r| r.index).collect::<Vec<_>>(), expected);
    let top = reranker
        .rerank(
            &france[0].query,
            &docs,
            &RerankOptions::default().with_top_n(2),
        )
        .unwrap();
    assert_eq!(top, ranked[..2]);
    let none: [&str; 0] = [];
    assert!(
        reranker
            .rerank("q", &none, &RerankOptions::default())
            .unwrap()
            .is_empty()
    );
}

/// A pair's score is the same bit for bit whatever shares its decode: alone, beside the other
/// documents, in another order, in decodes of other sizes (Q8_0, packed: our kernels and
/// flash-attention patch make packing invariant), or one pair per decode (F32, whose matrix
/// products are not packing-invariant).
#[test]
fn scores_do_not_depend_on_batch_mates() {
    for path in [reranker_q8(), reranker_f32()] {
        let packed = path == reranker_q8();
        let all = pairs();
        let query = &all[0].query;
        let docs: Vec<&str> = all.iter().map(|p| p.document.as_str()).collect();
        let reranker = load(&path);
        let together = by_index(
            reranker
                .rerank(query, &docs, &RerankOptions::default())
                .unwrap(),
        );
        let reversed: Vec<&str> = docs.iter().rev().copied().collect();
        let backwards = by_index(
            reranker
                .rerank(query, &reversed, &RerankOptions::default())
                .unwrap(),
        );
        // Decodes of at most 3 pairs: an explicit size packs even F32, so this is compared
        // only where packing is invariant.
        let small = Reranker::new(&path, options().with_batch_sequences(3)).unwrap();
        let in_threes = by_index(
            small
                .rerank(query, &docs, &RerankOptions::default())
                .unwrap(),
        );
        for (i, doc) in docs.iter().enumerate() {
            let alone = reranker
                .rerank(query, &[doc], &RerankOptions::default())
                .unwrap()[0];
            let key = |s: &RerankScore| (s.log_odds.to_bits(), s.score.to_bits());
            assert_eq!(
                key(&together[i]),
                key(&alone),
                "{} in {path:?}",
                all[i].name
            );
            assert_eq!(key(&backwards[docs.len() - 1 - i]), key(&alone));
            if packed {
                assert_eq!(key(&in_threes[i]), key(&alone));
            }
        }
    }
}

fn by_index(mut ranked: Vec<RerankScore>) -> Vec<RerankScore> {
    ranked.sort_by_key(|r| r.index);
    ranked
}

#[test]
fn an_embedding_model_is_refused_by_the_reranker() {
    for path in [f32_model(), q8_model()] {
        let err = Reranker::new(&path, options()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::WrongModelKind {
                    kind: ModelKind::Embedding,
                    ..
                }
            ),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains("is an embedding model"), "{message}");
        assert!(message.contains("pooling type is LAST"), "{message}");
        assert!(message.contains("not a reranker"), "{message}");
    }
}

#[test]
fn a_reranker_is_refused_by_the_embedder() {
    for (path, why) in [
        (reranker_q8(), "classifier head (cls.output.weight)"),
        (headless_q8(), "its name is"),
    ] {
        let err = Embedder::new(&path, options()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("is a reranker"), "{message}");
        assert!(message.contains(why), "{message}");
        assert!(message.contains("not an embedding model"), "{message}");
    }
}

#[test]
fn async_requests_match_and_cancelled_ones_stop() {
    let reranker = load(&reranker_q8());
    let all = pairs();
    let docs: Vec<&str> = all.iter().map(|p| p.document.as_str()).collect();
    let sync = reranker
        .rerank(&all[0].query, &docs, &RerankOptions::default())
        .unwrap();
    let awaited =
        block_on(reranker.rerank_async(&all[0].query, &docs, &RerankOptions::default())).unwrap();
    assert_eq!(sync, awaited);

    // One pair per decode, and the engine held after its first decode until the test has
    // cancelled: the other pairs must never run.
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let (entered_tx, release_rx) = (Mutex::new(entered_tx), Mutex::new(release_rx));
    let decodes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&decodes);
    let gated = Reranker::new(
        reranker_q8(),
        options()
            .with_batch_sequences(1)
            .with_decode_observer(move |_| {
                if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                    entered_tx.lock().unwrap().send(()).unwrap();
                    release_rx.lock().unwrap().recv().unwrap();
                }
            }),
    )
    .unwrap();
    let pending = gated
        .submit(&all[0].query, &docs, &RerankOptions::default())
        .unwrap();
    assert_eq!(pending.len(), docs.len());
    entered.recv_timeout(Duration::from_secs(120)).unwrap();
    pending.canceller().cancel();
    release.send(()).unwrap();
    assert!(matches!(pending.wait(), Err(Error::Cancelled)));
    assert_eq!(
        decodes.load(Ordering::SeqCst),
        1,
        "the other pairs never ran"
    );
    // The engine keeps serving after a cancelled request.
    assert_eq!(
        gated
            .rerank(&all[0].query, &docs, &RerankOptions::default())
            .unwrap(),
        sync
    );
    assert_eq!(gated.queued(), 0);
}

/// Polls a future to completion on this thread.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
