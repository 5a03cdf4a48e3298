//! A text's vector must not depend on what it is batched with: caches keyed by text, exact
//! deduplication and reproducible indexes all rely on it. On x86 texts are packed into shared
//! decodes and still get, bit for bit, the vector they get alone: our ggml patch 7
//! (vendor/PATCHES.md) runs flash attention's tiled CPU kernel for every micro-batch and cuts
//! each sequence's keys into tiles from its own first cell. Before it, a short text alone took
//! the row-by-row kernel and packed the tiled one, whose tiles followed the cells of the shared
//! cache, and its vector moved (cosine 0.9999). (`tests/flash_attention.rs` checks the kernel
//! itself.)
//!
//! The claim covers every path a CPU decode can take, so it is checked per path: the Q8_0
//! fixture (interleaved q8_0x16 kernels) with flash attention on and off, F16 weights (f16x16
//! kernels), the BF16 copy (ggml's BF16 products), F32 weights (tinyBLAS), and the K-quant
//! file types of the 4B and 8B models (Q4_K_M: Q4_K through ggml's repacked q4_K_8x8
//! GEMM/GEMV plus Q6_K; Q5_K_M: Q5_K and Q6_K; Q6_K), through vec_dot. Where packing is not
//! batch-invariant the embedder decodes one text per decode by default (see
//! `packing_policy`), and the same check holds.

#![cfg(target_arch = "x86_64")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::f16_writer::{Rounding, write_f16_copy};
use common::quant_fixtures::quant_model;
use gguf_embed::{
    Bf16Weights, DecodeStats, Device, EmbedOptions, Embedder, EmbedderOptions, FlashAttention,
};

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

/// How many components of `vector` differ in their bits from `want`'s.
fn differing(vector: &[f32], want: &[u32]) -> usize {
    bits(vector)
        .iter()
        .zip(want)
        .filter(|(x, y)| x != y)
        .count()
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

/// An embedder of the Q8_0 fixture that records how many sequences each decode held.
fn load(options: EmbedderOptions) -> (Embedder, Arc<Mutex<Vec<DecodeStats>>>) {
    load_model(&common::q8_model(), options)
}

/// An embedder of `model` on the CPU that records how many sequences each decode held.
fn load_model(model: &Path, options: EmbedderOptions) -> (Embedder, Arc<Mutex<Vec<DecodeStats>>>) {
    let decodes = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&decodes);
    let options = options
        .with_device(Device::Cpu)
        .with_decode_observer(move |stats| sink.lock().unwrap().push(*stats));
    (Embedder::new(model, options).unwrap(), decodes)
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
            let differing = differing(&got.vector, want);
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

/// The texts each path is checked with: about 300 and 100 tokens, six of 1 to 15, and twelve
/// more of 2 to 60, so that a decode of all of them holds 20 sequences.
fn mixed_texts() -> Vec<String> {
    let mut texts = vec![long_text(20, "rivers"), long_text(7, "mountains")];
    texts.extend(SHORT.iter().map(|t| t.to_string()));
    texts.extend((0..12).map(|i| match i % 3 {
        0 => format!("item {i}"),
        1 => long_text(1 + i / 3, &format!("topic {i}")),
        _ => format!("question {i}: where is the configuration file read?"),
    }));
    texts
}

/// How a path decodes its texts: all packed in one decode, or one text per decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Packed,
    OneTextPerDecode,
}

/// Checks, with `options` as given (the defaults of a path, whatever its batching policy),
/// that every text of [`mixed_texts`] gets the same vector bit for bit alone as: all in one
/// call with room for all of them in one decode, with the default budget (512 tokens), with a
/// 300-token budget, and in reverse order. Returns how the first of those was decoded (all in
/// one decode, or one text per decode), which the caller checks against the policy it expects.
fn check_batch_invariance(model: &Path, options: EmbedderOptions, what: &str) -> Policy {
    let texts = mixed_texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (embedder, decodes) = load_model(model, options.clone());
    let want = alone(&embedder, &refs);

    let (roomy, roomy_decodes) = load_model(model, options.clone().with_batch_tokens(2048));
    let (together, per_decode) = embed_counting_decodes(&roomy, &roomy_decodes, &refs);
    let policy = if per_decode == [refs.len()] {
        Policy::Packed
    } else {
        assert!(
            per_decode.iter().all(|&n| n == 1),
            "{what}: sequences per decode {per_decode:?}"
        );
        Policy::OneTextPerDecode
    };
    let tokens: Vec<usize> = together.iter().map(|e| e.tokens).collect();
    assert!(tokens[0] > 256 && tokens[2] == 1, "{what}: {tokens:?}");
    let mut runs = vec![("all in one decode".to_string(), together)];
    for budget in [None, Some(300)] {
        let (embedder, decodes) = match budget {
            None => (embedder.clone(), Arc::clone(&decodes)),
            Some(tokens) => load_model(model, options.clone().with_batch_tokens(tokens)),
        };
        let (got, per_decode) = embed_counting_decodes(&embedder, &decodes, &refs);
        if policy == Policy::Packed {
            assert!(
                per_decode.len() >= 2 && per_decode.iter().any(|&n| n > 2),
                "{what}: budget {budget:?}: sequences per decode {per_decode:?}"
            );
        }
        runs.push((
            format!("budget {budget:?} ({per_decode:?} per decode)"),
            got,
        ));
    }
    let backward: Vec<&str> = refs.iter().rev().copied().collect();
    let mut reversed = embedder
        .embed(&backward, &EmbedOptions::documents())
        .unwrap();
    reversed.reverse();
    runs.push(("in reverse order".to_string(), reversed));
    let mut failures = Vec::new();
    for (how, got) in &runs {
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let differing = differing(&g.vector, w);
            if differing > 0 {
                failures.push(format!(
                    "{how}: text {i} ({} tokens): {differing} components differ",
                    tokens[i]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{what}: vectors that differ from the text's vector alone:\n{}",
        failures.join("\n")
    );
    policy
}

/// An F16 model written from the F32 fixture, in a temporary folder that lives as long as it.
struct F16Model {
    dir: tempfile::TempDir,
    path: PathBuf,
}

fn f16_model() -> F16Model {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-f16.gguf");
    write_f16_copy(&common::f32_model(), &path, Rounding::ViaBfloat16);
    F16Model { dir, path }
}

/// F16 weights run on the interleaved f16x16 kernels (vendor patch 6): one FP32 FMA chain per
/// output whatever the number of activation rows, so texts pack.
#[test]
fn f16_weights_give_the_same_vectors_alone_and_packed() {
    let model = f16_model();
    let policy = check_batch_invariance(&model.path, EmbedderOptions::default(), "F16");
    assert_eq!(policy, Policy::Packed);
}

/// With flash attention off, llama.cpp multiplies, softmaxes and multiplies again over the
/// whole shared KV cache, in SIMD lanes counted from cell 0 (see the test below): one text per
/// decode is the default then, on Q8_0 and F16 weights alike.
#[test]
fn flash_attention_off_gives_the_same_vectors_alone_and_batched() {
    let f16 = f16_model();
    for (model, what) in [
        (common::q8_model(), "Q8_0, flash attention off"),
        (f16.path.clone(), "F16, flash attention off"),
    ] {
        let options = EmbedderOptions::default().with_flash_attention(FlashAttention::Off);
        let policy = check_batch_invariance(&model, options, what);
        assert_eq!(policy, Policy::OneTextPerDecode, "{what}");
    }
}

/// The lossless BF16 copy of an F16 model runs ggml's BF16 products (tinyBLAS from 2 rows,
/// vec_dot for one): one text per decode.
#[test]
fn bf16_weights_give_the_same_vectors_alone_and_batched() {
    let model = f16_model();
    let options = EmbedderOptions::default()
        .with_bf16_weights(Bf16Weights::Always)
        .with_bf16_dir(model.dir.path().join("copies"));
    let policy = check_batch_invariance(&model.path, options, "BF16 copy");
    assert_eq!(policy, Policy::OneTextPerDecode);
}

/// F32 weights (the reference fixture) run through tinyBLAS from 2 rows, vec_dot for one: one
/// text per decode.
#[test]
fn f32_weights_give_the_same_vectors_alone_and_batched() {
    let policy = check_batch_invariance(&common::f32_model(), EmbedderOptions::default(), "F32");
    assert_eq!(policy, Policy::OneTextPerDecode);
}

/// The 4B and 8B models' other file types (models/make_quant_fixtures.py): Q4_K_M (Q4_K with
/// some Q6_K), Q5_K_M (Q5_K with some Q6_K) and Q6_K decode one text at a time (K-quant
/// products take ggml's tiled kernel from 8 rows and vec_dot below); Q5_0 packs (tinyBLAS from
/// 2 rows and vec_dot for one compute each output alike).
#[test]
fn the_4b_and_8b_file_types_give_the_same_vectors_alone_and_batched() {
    for file_type in common::quant_fixtures::FILE_TYPES {
        let policy = check_batch_invariance(
            &quant_model(file_type),
            EmbedderOptions::default(),
            file_type,
        );
        let expected = if file_type == "q5_0" {
            Policy::Packed
        } else {
            Policy::OneTextPerDecode
        };
        assert_eq!(policy, expected, "{file_type}");
    }
}

/// Why those paths decode one text at a time: packed anyway (`with_batch_invariant(false)`),
/// some texts get other vectors than alone. If one of these starts to pass, ggml (or a patch
/// of ours) made that path invariant, and `embedder::invariance` can let it pack.
#[test]
fn packing_moves_vectors_on_the_paths_that_decode_one_text_at_a_time() {
    let f16 = f16_model();
    let bf16_copies = f16.dir.path().join("copies");
    let variant = || EmbedderOptions::default().with_batch_invariant(false);
    let mut cases = vec![
        (
            "F16, flash attention off".to_string(),
            f16.path.clone(),
            variant().with_flash_attention(FlashAttention::Off),
        ),
        (
            "BF16 copy".to_string(),
            f16.path.clone(),
            variant()
                .with_bf16_weights(Bf16Weights::Always)
                .with_bf16_dir(&bf16_copies),
        ),
        ("F32".to_string(), common::f32_model(), variant()),
    ];
    for file_type in ["q4_k_m", "q5_k_m", "q6_k"] {
        cases.push((file_type.to_string(), quant_model(file_type), variant()));
    }
    // Several long texts as well, so that some lie far from cell 0: with flash attention off
    // a 100-token text after three long ones is what moved on the F16 fixture.
    let mut texts = mixed_texts();
    texts.extend([
        long_text(19, "mountains"),
        long_text(12, "lakes"),
        long_text(7, "clouds"),
        long_text(3, "roads"),
    ]);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for (what, model, options) in cases {
        let (embedder, decodes) = load_model(&model, options.with_batch_tokens(2048));
        let want = alone(&embedder, &refs);
        let (packed, per_decode) = embed_counting_decodes(&embedder, &decodes, &refs);
        assert_eq!(per_decode, [refs.len()], "{what}");
        let moved = packed
            .iter()
            .zip(&want)
            .filter(|(g, w)| &bits(&g.vector) != *w)
            .count();
        eprintln!("{what}: {moved} of {} texts moved when packed", refs.len());
        assert!(moved > 0, "{what}: packing moved no vector");
    }
}
