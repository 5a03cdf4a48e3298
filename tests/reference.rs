//! Our tokens and vectors against Hugging Face tokenizers and transformers (models/reference.json).
//!
//! The fixture model has the real Qwen3 vocabulary and random weights, so the comparison
//! proves the pipeline (tokenization rules, end-of-text token, pooling, normalisation, batching)
//! rather than the weights.

mod common;

use std::sync::OnceLock;

use common::{Case, case, cases, f32_model, q8_model};
use gguf_embed::vector::cosine;
use gguf_embed::{EmbedOptions, Embedder, EmbedderOptions, Instruction, KvCache, OutputMode};

/// The least cosine to transformers' vectors each kind of check accepts, per backend where the
/// arithmetic differs: as tight as the measured worst allows (about 2-3x its distance from 1,
/// room for another CPU's instruction set), with the measured figure beside each
/// (`cargo test --release --test reference -- --nocapture --test-threads 1`, which prints the
/// worst of every check).
struct Tolerance {
    /// F32 weights against transformers in float32 (0.9999 could not tell F32 from weights
    /// rounded to bfloat16: 0.99999 and tighter can).
    f32: f64,
    /// Q8_0 weights against transformers with the same (dequantized) weights.
    q8_0: f64,
    /// A Matryoshka prefix (32 dimensions and up, renormalised) against the reference's.
    matryoshka: f64,
}

fn tolerance() -> Tolerance {
    match common::test_backend() {
        // x86 with AVX-512 (Intel Sapphire Rapids, 2026-12-04).
        common::TestBackend::Cpu => Tolerance {
            f32: 0.999999,        // measured 0.9999997
            q8_0: 0.9992,         // measured 0.9993637
            matryoshka: 0.999999, // measured 1.0000000 (to 7 places) at 32, 48 and 64 dimensions
        },
        // Mesa's lavapipe (docs/BENCHMARKS.md, "Vulkan (software)").
        common::TestBackend::Vulkan => Tolerance {
            f32: 0.99999,       // measured 0.9999954
            q8_0: 0.9999,       // measured 0.99997
            matryoshka: 0.9999, // not measured apart: F32's error, on 32 dimensions
        },
        // CUDA, Metal, ...: not measured by these tests yet, so the former bounds.
        common::TestBackend::OtherGpu => Tolerance {
            f32: 0.99999,
            q8_0: 0.999,
            matryoshka: 0.9999,
        },
    }
}

fn embedder(path: std::path::PathBuf, mode: OutputMode) -> Embedder {
    let options = EmbedderOptions::default()
        .with_device(common::test_device())
        .with_threads(2)
        .with_output_mode(mode);
    Embedder::new(path, options).unwrap()
}

fn f32_embedder() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| embedder(f32_model(), OutputMode::LastToken))
}

fn q8_embedder() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| embedder(q8_model(), OutputMode::LastToken))
}

/// Embeds every case alone (one call per text), with its own instruction.
fn embed_each(e: &Embedder) -> Vec<Vec<f32>> {
    cases()
        .iter()
        .map(|c| {
            let options = EmbedOptions::default().with_instruction(c.instruction());
            e.embed(&[&c.text], &options).unwrap().remove(0).vector
        })
        .collect()
}

fn assert_close(
    cases: &[Case],
    got: &[Vec<f32>],
    reference: impl Fn(&Case) -> &[f32],
    min_cosine: f64,
    what: &str,
) {
    let mut worst = (1.0f64, "");
    for (c, v) in cases.iter().zip(got) {
        let cos = cosine(v, reference(c));
        if cos < worst.0 {
            worst = (cos, &c.name);
        }
        assert!(
            cos >= min_cosine,
            "{what}: case {:?} has cosine {cos:.6} to the reference (minimum {min_cosine})",
            c.name
        );
    }
    eprintln!("{what}: worst cosine {:.7} ({})", worst.0, worst.1);
}

#[test]
fn token_ids_match_the_reference_tokenizer() {
    let e = f32_embedder();
    for c in cases() {
        let ids = e.token_ids(&c.text, &c.instruction()).unwrap();
        assert_eq!(
            ids, c.token_ids,
            "token ids of case {:?} ({:?})",
            c.name, c.prompt
        );
    }
}

#[test]
fn prompts_are_formatted_byte_for_byte() {
    for c in cases() {
        assert_eq!(
            c.instruction().format(&c.text),
            c.nfc_prompt,
            "case {:?}",
            c.name
        );
    }
    // The raw prompt of the query cases is what Qwen's own formatting produces.
    let q = case("query_web");
    assert_eq!(
        q.prompt,
        format!("Instruct: {}\nQuery:{}", q.task.as_deref().unwrap(), q.text)
    );
}

#[test]
fn f32_vectors_match_transformers() {
    assert_close(
        cases(),
        &embed_each(f32_embedder()),
        |c| &c.embedding,
        tolerance().f32,
        "F32 alone",
    );
}

#[test]
fn q8_0_vectors_match_transformers() {
    // The reference for a quantized file is transformers with the same weights: the Q8_0
    // values dequantized. What remains is llama.cpp's own arithmetic (it also quantizes the
    // activations to 8 bits in Q8_0 matrix products).
    let got = embed_each(q8_embedder());
    assert_close(
        cases(),
        &got,
        |c| &c.embedding_q8_0,
        tolerance().q8_0,
        "Q8_0 alone",
    );
    let vs_float: Vec<f64> = cases()
        .iter()
        .zip(&got)
        .map(|(c, v)| cosine(v, &c.embedding))
        .collect();
    let worst = vs_float.iter().cloned().fold(1.0, f64::min);
    eprintln!("Q8_0 vs the float32 weights' vectors: worst cosine {worst:.6}");
}

#[test]
fn llama_embedding_mode_gives_the_same_vectors() {
    let e = embedder(f32_model(), OutputMode::LlamaEmbeddings);
    let got = embed_each(&e);
    assert_close(
        cases(),
        &got,
        |c| &c.embedding,
        tolerance().f32,
        "F32, llama.cpp embedding mode",
    );
}

#[test]
fn batched_vectors_equal_single_vectors() {
    // All documents in one call (shared decodes), in input order, equal each one alone.
    let e = f32_embedder();
    let docs: Vec<&Case> = cases().iter().filter(|c| c.task.is_none()).collect();
    let texts: Vec<&str> = docs.iter().map(|c| c.text.as_str()).collect();
    let batched = e.embed(&texts, &EmbedOptions::documents()).unwrap();
    assert_eq!(batched.len(), docs.len());
    for (c, b) in docs.iter().zip(&batched) {
        let alone = e
            .embed(&[&c.text], &EmbedOptions::documents())
            .unwrap()
            .remove(0);
        // On the CPU the same bit for bit (F32 weights decode one text per decode by default:
        // tests/batch_invariance.rs); GPUs pack, and are held to the F32 bound.
        if common::test_backend() == common::TestBackend::Cpu {
            assert_eq!(
                alone.vector, b.vector,
                "case {:?}: batched vs alone",
                c.name
            );
        } else {
            let cos = cosine(&alone.vector, &b.vector);
            assert!(
                cos >= tolerance().f32,
                "case {:?}: batched vs alone cosine {cos}",
                c.name
            );
        }
        assert!(
            cosine(&b.vector, &c.embedding) >= tolerance().f32,
            "case {:?}",
            c.name
        );
    }
}

#[test]
fn per_sequence_kv_cache_gives_the_same_vectors_in_input_order() {
    // With one cache stream per sequence llama.cpp splits a decode into equal-length runs, and
    // the last tokens reach the graph callback in the order the sequences end; mixed lengths in
    // one decode check that every vector still lands with its own text.
    let options = EmbedderOptions::default()
        .with_device(common::test_device())
        .with_threads(2)
        .with_kv_cache(KvCache::PerSequence)
        .with_sort_by_length(false);
    let e = Embedder::new(f32_model(), options).unwrap();
    let docs: Vec<&Case> = cases().iter().filter(|c| c.task.is_none()).collect();
    let texts: Vec<&str> = docs.iter().map(|c| c.text.as_str()).collect();
    let out = e.embed(&texts, &EmbedOptions::documents()).unwrap();
    let got: Vec<Vec<f32>> = out.into_iter().map(|o| o.vector).collect();
    let docs: Vec<Case> = docs.into_iter().cloned().collect();
    assert_close(
        &docs,
        &got,
        |c| &c.embedding,
        tolerance().f32,
        "F32, per-sequence KV",
    );
}

#[test]
fn small_decodes_and_reordered_inputs_give_the_same_vectors() {
    // Tiny decodes (at most 3 sequences, 256 tokens) force many decodes and a context that
    // grows for the long text and shrinks back.
    let options = EmbedderOptions::default()
        .with_device(common::test_device())
        .with_threads(2)
        .with_batch_sequences(3)
        .with_batch_tokens(256);
    let e = Embedder::new(f32_model(), options).unwrap();
    let docs: Vec<&Case> = cases().iter().filter(|c| c.task.is_none()).rev().collect();
    let texts: Vec<&str> = docs.iter().map(|c| c.text.as_str()).collect();
    let out = e.embed(&texts, &EmbedOptions::documents()).unwrap();
    let docs: Vec<Case> = docs.into_iter().cloned().collect();
    let got: Vec<Vec<f32>> = out.into_iter().map(|o| o.vector).collect();
    assert_close(
        &docs,
        &got,
        |c| &c.embedding,
        tolerance().f32,
        "F32, packed 3 per decode",
    );
}

#[test]
fn the_end_of_text_token_and_nfc_matter() {
    let e = f32_embedder();
    let eot = common::eot_id();

    // Our tokenization appends <|endoftext|> to the text (the reference's ids end with it),
    // exactly once, and the vector from text matches the reference.
    let c = case("english");
    let ours = e.token_ids(&c.text, &Instruction::None).unwrap();
    assert_eq!(ours.last(), Some(&eot));
    assert_eq!(
        ours, c.token_ids,
        "token ids with the end-of-text token appended"
    );
    let from_text = e.embed(&[&c.text], &EmbedOptions::documents()).unwrap();
    assert_eq!(from_text[0].tokens, c.token_ids.len());
    assert!(cosine(&from_text[0].vector, &c.embedding) >= tolerance().f32);
    // A text that spells the token stays text: the only end-of-text id is the appended one.
    let spelled = e
        .token_ids("stop here <|endoftext|> go on", &Instruction::None)
        .unwrap();
    assert_eq!(spelled.iter().filter(|&&t| t == eot).count(), 1);
    assert_eq!(spelled.last(), Some(&eot));

    // Our code normalises to NFC: the decomposed text gets the composed text's reference
    // token ids (llama.cpp alone would tokenize the combining accents separately) and the very
    // same vector.
    let nfd = case("nfd_accents");
    let nfc = case("nfc_accents");
    assert_ne!(
        nfd.text, nfc.text,
        "the fixture's two texts differ in bytes"
    );
    assert_eq!(
        e.token_ids(&nfd.text, &Instruction::None).unwrap(),
        nfc.token_ids
    );
    let both = e
        .embed(&[&nfd.text, &nfc.text], &EmbedOptions::documents())
        .unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&both[0].vector), bits(&both[1].vector));
    assert!(cosine(&both[0].vector, &nfc.embedding) >= tolerance().f32);

    // Negative control: the fixture model is sensitive enough that a wrong token sequence
    // (here the text's last token dropped) moves the vector far.
    let mut shortened = c.token_ids.clone();
    shortened.pop();
    shortened.pop();
    let wrong = e
        .embed_tokens(&[shortened], &EmbedOptions::documents())
        .unwrap();
    assert!(cosine(&wrong[0].vector, &c.embedding) < 0.99);
}

#[test]
fn pre_tokenized_input_matches_text_input() {
    let e = f32_embedder();
    let c = case("chinese");
    let with_eot = e
        .embed_tokens(
            std::slice::from_ref(&c.token_ids),
            &EmbedOptions::documents(),
        )
        .unwrap();
    let mut bare = c.token_ids.clone();
    bare.pop();
    let without_eot = e.embed_tokens(&[bare], &EmbedOptions::documents()).unwrap();
    assert!(cosine(&with_eot[0].vector, &c.embedding) >= tolerance().f32);
    assert!(
        cosine(&without_eot[0].vector, &c.embedding) >= tolerance().f32,
        "EOT appended"
    );
    assert_eq!(with_eot[0].tokens, c.token_ids.len());
}

#[test]
fn matryoshka_dimensions_truncate_then_renormalise() {
    let e = f32_embedder();
    let c = case("german");
    let full = e
        .embed(&[&c.text], &EmbedOptions::documents())
        .unwrap()
        .remove(0);
    assert_eq!(full.vector.len(), e.dimensions());
    for dims in [32, 48, e.dimensions()] {
        let v = e
            .embed(&[&c.text], &EmbedOptions::documents().with_dimensions(dims))
            .unwrap()
            .remove(0)
            .vector;
        assert_eq!(v.len(), dims);
        let norm: f64 = v
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm} at {dims} dims");
        let reference = &c.embedding[..dims];
        let cos = cosine(&v, reference);
        eprintln!("Matryoshka {dims} dimensions: cosine {cos:.7}");
        assert!(
            cos >= tolerance().matryoshka,
            "{dims} dims vs truncated reference: {cos}"
        );
    }
    for bad in [0, 16, 31, e.dimensions() + 1] {
        let err = e
            .embed(&[&c.text], &EmbedOptions::documents().with_dimensions(bad))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("dimensions must be between 32 and"),
            "{err}"
        );
    }
}

#[test]
fn normalisation_can_be_turned_off() {
    let e = f32_embedder();
    let c = case("russian");
    let raw = e
        .embed(&[&c.text], &EmbedOptions::documents().with_normalize(false))
        .unwrap()
        .remove(0)
        .vector;
    let norm: f64 = raw
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    assert!(
        (norm - 1.0).abs() > 0.01,
        "raw hidden state has norm {norm}"
    );
    assert!(cosine(&raw, &c.embedding) >= tolerance().f32);
}

#[test]
fn instruction_changes_the_vector_and_matches_the_reference() {
    let e = f32_embedder();
    let q = case("query_code");
    let as_doc = e
        .embed(&[&q.text], &EmbedOptions::documents())
        .unwrap()
        .remove(0);
    let as_query = e
        .embed(
            &[&q.text],
            &EmbedOptions::default().with_instruction(q.instruction()),
        )
        .unwrap()
        .remove(0);
    assert!(cosine(&as_query.vector, &q.embedding) >= tolerance().f32);
    assert!(cosine(&as_doc.vector, &q.embedding) < 0.99);
    assert!(as_query.tokens > as_doc.tokens);
    let custom = Instruction::Custom(q.task.clone().unwrap());
    assert_eq!(e.token_ids(&q.text, &custom).unwrap(), q.token_ids);
}
