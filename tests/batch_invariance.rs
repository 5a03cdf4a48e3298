//! A text's vector must not depend on what it is batched with: caches keyed by text, exact
//! deduplication and reproducible indexes all rely on it. Compared bit for bit, on the Q8_0
//! fixture, where flash attention's CPU kernels once gave a short text alone a different vector
//! (cosine 0.9999) than beside a long one.

mod common;

use std::sync::{Arc, Mutex};

use gguf_embed::{DecodeStats, Device, EmbedOptions, Embedder, EmbedderOptions, FlashAttention};

const SHORT: [&str; 3] = [
    "where do we retry uploads",
    "Paris is the capital of France.",
    "fn add(a: i32, b: i32) -> i32 { a + b }",
];

/// A text of about 300 tokens: with it, a decode holds well over 64 query rows (where ggml's
/// tiled attention kernel took over) and still fits one default decode (512 tokens).
fn long_text() -> String {
    (0..20)
        .map(|i| format!("Sentence number {i} talks about rivers, bridges and the weather. "))
        .collect()
}

fn bits(vector: &[f32]) -> Vec<u32> {
    vector.iter().map(|x| x.to_bits()).collect()
}

/// An embedder that records how many sequences each decode held.
fn load(options: EmbedderOptions) -> (Embedder, Arc<Mutex<Vec<DecodeStats>>>) {
    let decodes = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&decodes);
    let options = options
        .with_device(Device::Cpu)
        .with_decode_observer(move |stats| sink.lock().unwrap().push(*stats));
    (Embedder::new(common::q8_model(), options).unwrap(), decodes)
}

/// Each short text alone, then beside the long text (and each other) in one call: in one
/// decode when `packed`, else (the batch-invariant default) one decode per text.
fn alone_and_batched(
    embedder: &Embedder,
    decodes: &Mutex<Vec<DecodeStats>>,
    packed: bool,
) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let options = EmbedOptions::documents();
    let alone = SHORT
        .iter()
        .map(|t| bits(&embedder.embed(&[t], &options).unwrap()[0].vector))
        .collect();
    let long = long_text();
    let mut mixed = vec![long.as_str()];
    mixed.extend(SHORT);
    decodes.lock().unwrap().clear();
    let out = embedder.embed(&mixed, &options).unwrap();
    assert!(
        out[0].tokens > 128,
        "the long text has {} tokens",
        out[0].tokens
    );
    let decodes = decodes.lock().unwrap();
    let per_decode: Vec<usize> = decodes.iter().map(|d| d.sequences).collect();
    if packed {
        assert_eq!(per_decode, [mixed.len()], "the texts share one decode");
    } else {
        assert_eq!(per_decode, vec![1; mixed.len()], "one decode per text");
    }
    let batched = out[1..].iter().map(|e| bits(&e.vector)).collect();
    (alone, batched)
}

#[test]
fn a_texts_vector_is_the_same_alone_and_beside_a_long_text() {
    for fa in [FlashAttention::Auto, FlashAttention::On] {
        let (embedder, decodes) = load(EmbedderOptions::default().with_flash_attention(fa));
        let (alone, batched) = alone_and_batched(&embedder, &decodes, false);
        for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
            let differing = a.iter().zip(b).filter(|(x, y)| x != y).count();
            assert_eq!(
                differing, 0,
                "flash attention {fa:?}: text {i} has {differing} components that change with \
                 its batch-mates"
            );
        }
    }
}

#[test]
fn the_order_and_company_of_a_request_do_not_move_its_vectors() {
    let (embedder, _) = load(EmbedderOptions::default());
    let long = long_text();
    let forward: Vec<&str> = SHORT.iter().copied().chain([long.as_str()]).collect();
    let backward: Vec<&str> = forward.iter().rev().copied().collect();
    let a = embedder
        .embed(&forward, &EmbedOptions::documents())
        .unwrap();
    let b = embedder
        .embed(&backward, &EmbedOptions::documents())
        .unwrap();
    for (x, y) in a.iter().zip(b.iter().rev()) {
        assert_eq!(bits(&x.vector), bits(&y.vector));
    }
}

/// What the default guards against: packed into one decode with the long text (flash
/// attention's tiled kernel), the short texts' vectors are not those they get alone. If this
/// starts failing, packing became batch-invariant and the one-decode-per-text default costs
/// speed for nothing.
#[test]
fn packed_with_a_long_text_the_vectors_move() {
    let (embedder, decodes) = load(
        EmbedderOptions::default()
            .with_flash_attention(FlashAttention::On)
            .with_batch_invariant(false),
    );
    let (alone, batched) = alone_and_batched(&embedder, &decodes, true);
    let moved = alone.iter().zip(&batched).filter(|(a, b)| a != b).count();
    assert!(moved > 0, "no short text changed beside the long one");
}
