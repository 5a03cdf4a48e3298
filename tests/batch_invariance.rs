//! A text's vector must not depend on what it is batched with: caches keyed by text, exact
//! deduplication and reproducible indexes all rely on it. On x86 texts are packed into shared
//! decodes and still get, bit for bit, the vector they get alone: our ggml patch 7
//! (vendor/PATCHES.md) runs flash attention's tiled CPU kernel for every micro-batch and cuts
//! each sequence's keys into tiles from its own first cell. Before it, a short text alone took
//! the row-by-row kernel and packed the tiled one, whose tiles followed the cells of the shared
//! cache, and its vector moved (cosine 0.9999). Compared bit for bit on the Q8_0 fixture.
//! (`tests/flash_attention.rs` checks the kernel itself.)

#![cfg(target_arch = "x86_64")]

mod common;

use std::sync::{Arc, Mutex};

use gguf_embed::{DecodeStats, Device, EmbedOptions, Embedder, EmbedderOptions, FlashAttention};

/// Short texts: 1 token (the empty text: its end-of-text token alone) to about 15.
const SHORT: [&str; 6] = [
    "",
    "hi",
    "where do we retry uploads",
    "Paris is the capital of France.",
    "fn add(a: i32, b: i32) -> i32 { a + b }",
    "Le renard brun saute par-dessus le chien paresseux.",
];

/// A text of `sentences` sentences, about 15 tokens each.
fn long_text(sentences: usize, topic: &str) -> String {
    (0..sentences)
        .map(|i| format!("Sentence number {i} talks about {topic}, bridges and the weather. "))
        .collect()
}

fn bits(vector: &[f32]) -> Vec<u32> {
    vector.iter().map(|x| x.to_bits()).collect()
}

/// Embeds `texts` as documents and returns the vectors with the number of texts in each
/// decode it took, as the decode observer saw them.
fn embed_counting_decodes(
    embedder: &Embedder,
    decodes: &Mutex<Vec<DecodeStats>>,
    texts: &[&str],
) -> (Vec<gguf_embed::Embedding>, Vec<usize>) {
    decodes.lock().unwrap().clear();
    let vectors = embedder.embed(texts, &EmbedOptions::documents()).unwrap();
    let per_decode = decodes
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.sequences)
        .collect();
    (vectors, per_decode)
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

fn alone(embedder: &Embedder, texts: &[&str]) -> Vec<Vec<u32>> {
    texts
        .iter()
        .map(|t| bits(&embedder.embed(&[t], &EmbedOptions::documents()).unwrap()[0].vector))
        .collect()
}

/// Where each text starts in the KV cache of a decode that packs them longest first (the
/// worker's order; ties keep input order), from their token counts.
fn start_cells(tokens: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tokens[i]));
    let mut starts = vec![0; tokens.len()];
    let mut cell = 0;
    for i in order {
        starts[i] = cell;
        cell += tokens[i];
    }
    starts
}

/// Short texts (1 to 15 tokens: alone they were under the tiled kernel's 64 rows), a text of
/// about 100 tokens and one of about 300, all packed into one decode by default, each at the
/// cell the packing gives it (most not multiples of 64): every vector equals the one its text
/// gets alone, bit for bit.
#[test]
fn a_texts_vector_is_the_same_alone_and_packed_beside_short_and_long_texts() {
    let long = long_text(20, "rivers");
    let medium = long_text(7, "mountains");
    let mut texts = vec![long.as_str(), medium.as_str()];
    texts.extend(SHORT);
    for fa in [FlashAttention::Auto, FlashAttention::On] {
        let (embedder, decodes) = load(EmbedderOptions::default().with_flash_attention(fa));
        let want = alone(&embedder, &texts);
        let (packed, per_decode) = embed_counting_decodes(&embedder, &decodes, &texts);
        assert_eq!(
            per_decode,
            [texts.len()],
            "the texts share one decode by default"
        );

        let tokens: Vec<usize> = packed.iter().map(|e| e.tokens).collect();
        let starts = start_cells(&tokens);
        assert!(
            tokens[0] > 256 && (65..200).contains(&tokens[1]),
            "{tokens:?}"
        );
        assert_eq!(tokens[2], 1, "the empty text is its end-of-text token");
        assert_eq!(tokens[3], 2);
        assert!(tokens[2..].iter().all(|&n| n < 64), "{tokens:?}");
        let unaligned = |i: usize| !starts[i].is_multiple_of(64);
        assert!(
            unaligned(1),
            "the 100-token text starts at cell {}",
            starts[1]
        );
        assert!(
            (2..texts.len()).filter(|&i| unaligned(i)).count() >= SHORT.len() - 1,
            "short texts' starts: {starts:?}"
        );

        for (i, (got, want)) in packed.iter().zip(&want).enumerate() {
            let differing = bits(&got.vector)
                .iter()
                .zip(want)
                .filter(|(x, y)| x != y)
                .count();
            assert_eq!(
                differing, 0,
                "flash attention {fa:?}: text {i} ({} tokens, at cell {}) has {differing} \
                 components that differ from its vector alone",
                tokens[i], starts[i]
            );
        }
    }
}

/// The same texts in two orders, without sorting by length, so that each lies at other cells
/// and beside other texts: the same vectors. (On this fixture it passed without patch 7 too;
/// the tests above and below are the ones that failed.)
#[test]
fn the_order_and_company_of_a_request_do_not_move_its_vectors() {
    let (embedder, decodes) = load(EmbedderOptions::default().with_sort_by_length(false));
    let long = long_text(20, "rivers");
    let medium = long_text(7, "mountains");
    let forward: Vec<&str> = SHORT
        .iter()
        .copied()
        .chain([long.as_str(), medium.as_str()])
        .collect();
    let backward: Vec<&str> = forward.iter().rev().copied().collect();
    let a = embedder
        .embed(&forward, &EmbedOptions::documents())
        .unwrap();
    let b = embedder
        .embed(&backward, &EmbedOptions::documents())
        .unwrap();
    assert!(
        decodes
            .lock()
            .unwrap()
            .iter()
            .all(|d| d.sequences == forward.len()),
        "each order is one packed decode"
    );
    for (x, y) in a.iter().zip(b.iter().rev()) {
        assert_eq!(bits(&x.vector), bits(&y.vector));
    }
}

/// Many texts, more than one decode holds (32 sequences, 512 tokens): each decode packs
/// several, in groups that differ from a run with a smaller budget, and every vector is still
/// the one its text gets alone.
#[test]
fn texts_spread_over_several_packed_decodes_keep_their_vectors() {
    let texts: Vec<String> = (0..40)
        .map(|i| match i % 5 {
            0 => long_text(1 + i / 5, "lakes"),
            1 => format!("item {i}"),
            2 => format!("question {i}: where is the configuration file read?"),
            3 => String::new(),
            _ => long_text(5, &format!("topic {i}")),
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (embedder, decodes) = load(EmbedderOptions::default());
    let want = alone(&embedder, &refs);
    for budget in [None, Some(300)] {
        let (embedder, decodes) = match budget {
            None => (embedder.clone(), Arc::clone(&decodes)),
            Some(tokens) => load(EmbedderOptions::default().with_batch_tokens(tokens)),
        };
        let (got, per_decode) = embed_counting_decodes(&embedder, &decodes, &refs);
        let (last, full) = per_decode.split_last().unwrap();
        assert!(
            !full.is_empty() && full.iter().all(|&n| n >= 2) && *last >= 1,
            "budget {budget:?}: sequences per decode {per_decode:?}"
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(&bits(&g.vector), w, "budget {budget:?}: text {i} moved");
        }
    }
}
