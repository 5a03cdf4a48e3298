//! ggml's CPU flash attention, called directly (the `ggml_flash_attn_ext` op of the vendored,
//! patched ggml that gguf-embed links): a sequence's attention output must be the same bit
//! for bit alone, at cell 0 of the KV cache, and packed at any other cell beside other
//! sequences, as llama.cpp lays out a decode of several texts in its unified cache (vendor
//! patch 7, `vendor/PATCHES.md`). Upstream, a micro-batch under 64 query rows took a
//! row-by-row kernel and a larger one the tiled kernel, whose KV tiles started at cell 0 of
//! the cache, so the same sequence was cut into other tiles (and rounded otherwise) wherever
//! it did not start at a multiple of 64.
//!
//! The shapes are Qwen3-Embedding-0.6B's (16 query heads over 8 KV heads of 128 values; F32
//! queries, F16 keys and values, an F16 causal mask per sequence), the lengths run from 1 to
//! 300 tokens and the sequences start at cells that are and are not multiples of 64.

// The `portable` build loads the CPU backend as a module at run time, so ggml's CPU
// functions are not there to link against; the reference and batch-invariance tests cover
// that build through the whole model.
#![cfg(all(target_arch = "x86_64", not(feature = "portable")))]

use llama_cpp_sys_2 as sys;

const D: usize = 128;
const HEADS: usize = 16;
const KV_HEADS: usize = 8;
/// llama.cpp's unified cache shows the kernel its used cells rounded up to 256.
const KV_PAD: usize = 256;

/// Deterministic values in [-2, 2).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
    }

    fn fill(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// One sequence's own queries, keys and values, token by token.
struct Seq {
    len: usize,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
}

fn seq(len: usize, seed: u64) -> Seq {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
    Seq {
        len,
        q: rng.fill(len * HEADS * D),
        k: rng.fill(len * KV_HEADS * D),
        v: rng.fill(len * KV_HEADS * D),
    }
}

/// Runs flash attention over `seqs` packed one after another from cell 0 (one query row per
/// token, each sequence's tokens in the cells after the previous sequence's, as llama.cpp puts
/// them after clearing its cache), with a causal mask inside each sequence. The cells past the
/// last sequence hold other (stale) values and are masked. Returns each token's output, all
/// heads (HEADS x D floats), in order.
fn attend(seqs: &[&Seq], threads: i32) -> Vec<Vec<f32>> {
    let n_q: usize = seqs.iter().map(|s| s.len).sum();
    let n_kv = n_q.next_multiple_of(KV_PAD);
    let mut stale = Rng(77);
    // q[h][t][d], k and v [h][cell][d] (ggml's ne order: d, token, head).
    let mut q = vec![0.0f32; HEADS * n_q * D];
    let mut k = stale.fill(KV_HEADS * n_kv * D);
    let mut v = stale.fill(KV_HEADS * n_kv * D);
    let mut mask = vec![f32::NEG_INFINITY; n_q * n_kv];
    let mut start = 0;
    for s in seqs {
        for t in 0..s.len {
            let row = start + t;
            for h in 0..HEADS {
                q[(h * n_q + row) * D..][..D].copy_from_slice(&s.q[(t * HEADS + h) * D..][..D]);
            }
            for h in 0..KV_HEADS {
                k[(h * n_kv + row) * D..][..D].copy_from_slice(&s.k[(t * KV_HEADS + h) * D..][..D]);
                v[(h * n_kv + row) * D..][..D].copy_from_slice(&s.v[(t * KV_HEADS + h) * D..][..D]);
            }
            // Causal: the row sees its own sequence's cells up to itself.
            mask[row * n_kv + start..][..=t].fill(0.0);
        }
        start += s.len;
    }

    let bytes = (q.len() + mask.len()) * 4 + (k.len() + v.len()) * 2;
    let params = sys::ggml_init_params {
        // The tensors, the output, and the work buffer the compute plan asks for.
        mem_size: bytes * 2 + (64 << 20),
        mem_buffer: std::ptr::null_mut(),
        no_alloc: false,
    };
    // SAFETY: plain ggml API use: every tensor is created in `ctx` with the size written into
    // it, and `ctx` is freed after the output is copied out.
    unsafe {
        sys::ggml_cpu_init();
        let ctx = sys::ggml_init(params);
        assert!(!ctx.is_null());
        let f32_tensor = |data: &[f32], ne: [usize; 3]| {
            let t = sys::ggml_new_tensor_3d(
                ctx,
                sys::GGML_TYPE_F32,
                ne[0] as i64,
                ne[1] as i64,
                ne[2] as i64,
            );
            std::ptr::copy_nonoverlapping(data.as_ptr(), (*t).data.cast(), data.len());
            t
        };
        let f16_tensor = |data: &[f32], ne: [usize; 3]| {
            let t = sys::ggml_new_tensor_3d(
                ctx,
                sys::GGML_TYPE_F16,
                ne[0] as i64,
                ne[1] as i64,
                ne[2] as i64,
            );
            sys::ggml_fp32_to_fp16_row(data.as_ptr(), (*t).data.cast(), data.len() as i64);
            t
        };
        let tq = f32_tensor(&q, [D, n_q, HEADS]);
        let tk = f16_tensor(&k, [D, n_kv, KV_HEADS]);
        let tv = f16_tensor(&v, [D, n_kv, KV_HEADS]);
        let tm = f16_tensor(&mask, [n_kv, n_q, 1]);
        let out = sys::ggml_flash_attn_ext(ctx, tq, tk, tv, tm, 1.0 / (D as f32).sqrt(), 0.0, 0.0);
        let graph = sys::ggml_new_graph(ctx);
        sys::ggml_build_forward_expand(graph, out);
        let status = sys::ggml_graph_compute_with_ctx(ctx, graph, threads);
        assert_eq!(status, sys::GGML_STATUS_SUCCESS);
        // out: [D, HEADS, n_q]
        let data = std::slice::from_raw_parts(sys::ggml_get_data_f32(out), n_q * HEADS * D);
        let rows = data.chunks_exact(HEADS * D).map(<[f32]>::to_vec).collect();
        sys::ggml_free(ctx);
        rows
    }
}

fn bits(rows: &[Vec<f32>]) -> Vec<Vec<u32>> {
    rows.iter()
        .map(|r| r.iter().map(|x| x.to_bits()).collect())
        .collect()
}

/// The target sequence's rows, alone and in several packings, with 1 and 2 threads: all the
/// same bits. Lengths 1 to 10 are what a short text is (alone they used the row kernel
/// upstream); 63 to 300 cross the 64-row Q tile and the 64-key KV tile.
#[test]
fn a_sequences_attention_is_the_same_alone_and_packed_at_any_cell() {
    let before_short = seq(37, 1);
    let before_long = seq(150, 2);
    let aligned = seq(64, 3);
    let after = seq(90, 4);
    let shorts: Vec<Seq> = (0..6).map(|i| seq(2 + i, 10 + i as u64)).collect();
    let mut checked = 0;
    for len in [1, 2, 3, 5, 9, 10, 31, 63, 64, 65, 100, 129, 300] {
        let target = seq(len, 1000 + len as u64);
        let want = bits(&attend(&[&target], 1));
        let mut packings: Vec<(usize, Vec<&Seq>)> = vec![
            (0, vec![&target, &after]),
            (1, vec![&before_short, &target, &after]),
            (1, vec![&aligned, &target]),
            (2, vec![&before_long, &shorts[0], &target, &before_short]),
        ];
        let mut crowd: Vec<&Seq> = shorts.iter().collect();
        crowd.push(&target);
        crowd.extend(shorts.iter());
        packings.push((shorts.len(), crowd));
        for (at, packing) in &packings {
            let start: usize = packing[..*at].iter().map(|s| s.len).sum();
            assert!(std::ptr::eq(packing[*at], &target));
            for threads in [1, 2] {
                let rows = bits(&attend(packing, threads));
                let got = &rows[start..start + len];
                let differing = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x != y).count())
                    .sum::<usize>();
                assert_eq!(
                    differing,
                    0,
                    "a {len}-token sequence at cell {start} beside {} others ({threads} \
                     threads): {differing} of {} output values differ from it alone",
                    packing.len() - 1,
                    len * HEADS * D
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 13 * 5 * 2);
}

/// The packing keeps each sequence's output its own: a packed decode gives every sequence the
/// output it gets alone, and these differ between sequences (a check that the harness does
/// attend: an all-zero or shared output would pass the test above).
#[test]
fn every_sequence_of_a_packed_decode_gets_its_own_output() {
    let seqs: Vec<Seq> = [70, 3, 129, 1, 12]
        .iter()
        .enumerate()
        .map(|(i, &len)| seq(len, 500 + i as u64))
        .collect();
    let refs: Vec<&Seq> = seqs.iter().collect();
    let packed = bits(&attend(&refs, 2));
    let mut start = 0;
    let mut lasts = Vec::new();
    for s in &seqs {
        let alone = bits(&attend(&[s], 2));
        assert!(
            packed[start..start + s.len] == alone[..],
            "the {}-token sequence at cell {start} differs from it alone",
            s.len
        );
        assert!(alone.iter().flatten().any(|&x| f32::from_bits(x) != 0.0));
        lasts.push(alone[s.len - 1].clone());
        start += s.len;
    }
    for (i, a) in lasts.iter().enumerate() {
        for b in &lasts[i + 1..] {
            assert!(a != b, "two sequences got the same output");
        }
    }
}
