// Q8_0 matrix products for x86 on an interleaved layout (gguf-embed patch, see PATCHES.md).
//
// ggml runs Q8_0 x F32 products on x86 through llamafile's tinyBLAS, which converts and
// scales every 32-value block of every (weight row, activation row) pair separately. Here the
// weights are repacked, losslessly, so that one 64-byte vector holds 4 consecutive values of
// 16 weight rows: one VNNI instruction (vpdpbusd) then does 16 rows x 4 values for one
// activation row, and the block's scales are applied once per block for 16 rows at a time.
//
// Layout of a repacked tensor with N rows of K values (nb = K/32 blocks per row):
//   rows are taken in groups of 16 (the last group may hold r < 16 rows);
//   group g starts at byte g * 16 * nb * 34 and holds, for each block b in order:
//     r fp16 scales (the rows' own Q8_0 scales for block b), then
//     8 steps of r x 4 bytes: step s holds values 4s..4s+3 of each row, row by row,
//     each value stored as (q XOR 0x80), i.e. q + 128 as an unsigned byte.
//   The size is exactly N * nb * 34 bytes, the Q8_0 tensor's own size.
// The values and scales are the file's own; only their order changes.
//
// Activations are quantised per row to Q8_0 exactly as ggml's quantize_row_q8_0 does on x86
// (d = amax/127 rounded to fp16, values x*127/amax rounded to nearest even), into rows of
//   [nb float scales][nb int32 corrections][K int8 values], padded to 64 bytes,
// where correction = 128 * (sum of the block's values): vpdpbusd multiplies unsigned by signed
// bytes, so (q_w + 128) * q_a summed over a block exceeds the true sum by exactly that.
//
// Compiled for the instruction set of the translation unit, like the rest of ggml-cpu:
//   Q8X16_AVX512VNNI  AVX512-VNNI + BW + VL (Ice Lake, Sapphire Rapids, Zen 4 and later)
//   Q8X16_AVXVNNI     AVX-VNNI on 256-bit registers (Alder Lake and later client CPUs)
//   Q8X16_AVX2        AVX2 + FMA + F16C, products through vpmaddubsw with the sign trick
// The portable build compiles each ggml-cpu variant with its own flags and picks one at run
// time, so each CPU gets the best of these that it can run.
//
// This header is self-contained (no ggml headers) so that the kernel unit test
// (tests/q8_0x16_kernels.cpp in gguf-embed) compiles it once per instruction set.

#pragma once

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512F__) && \
    defined(__FMA__) && defined(__F16C__)
#    define Q8X16_AVX512VNNI 1
#    define Q8X16_AVAILABLE  1
#elif defined(__AVXVNNI__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#    define Q8X16_AVXVNNI   1
#    define Q8X16_AVAILABLE 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#    define Q8X16_AVX2      1
#    define Q8X16_AVAILABLE 1
#endif

#if defined(Q8X16_AVAILABLE)

namespace q8x16 {

static constexpr int QK     = 32;  // values per Q8_0 block
static constexpr int QBYTES = 34;  // bytes per Q8_0 block: fp16 scale + 32 int8
static constexpr int NR     = 16;  // weight rows per group
static constexpr int STEPS  = QK / 4;

// The instruction set this translation unit was built for.
static inline const char * isa_name() {
#    if defined(Q8X16_AVX512VNNI)
    return "avx512vnni";
#    elif defined(Q8X16_AVXVNNI)
    return "avxvnni";
#    else
    return "avx2";
#    endif
}

// ---------------------------------------------------------------------------------------------
// Weights

// Bytes from the start of the tensor to group g (every group before it is full).
static inline size_t group_offset(int64_t g, int64_t nb) {
    return (size_t) g * NR * nb * QBYTES;
}

// Repacks `nrows` Q8_0 rows of `k` values (src: the file's layout) into dst (same size).
static inline void repack(const void * src, void * dst, int64_t nrows, int64_t k) {
    const int64_t   nb = k / QK;
    const uint8_t * in = (const uint8_t *) src;
    uint8_t *       out = (uint8_t *) dst;
    for (int64_t g0 = 0; g0 < nrows; g0 += NR) {
        const int64_t r = nrows - g0 < NR ? nrows - g0 : NR;
        for (int64_t b = 0; b < nb; b++) {
            for (int64_t i = 0; i < r; i++) {
                memcpy(out + 2 * i, in + ((g0 + i) * nb + b) * QBYTES, 2);
            }
            out += 2 * r;
            for (int s = 0; s < STEPS; s++) {
                for (int64_t i = 0; i < r; i++) {
                    uint32_t v;
                    memcpy(&v, in + ((g0 + i) * nb + b) * QBYTES + 2 + 4 * s, 4);
                    v ^= 0x80808080u;
                    memcpy(out + 4 * i, &v, 4);
                }
                out += 4 * r;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Activations

// Bytes of one quantised activation row of k values.
static inline size_t act_row_size(int64_t k) {
    const size_t n = (size_t) (k / QK) * 8 + (size_t) k;
    return (n + 63) & ~(size_t) 63;
}

static inline const float *   act_scales(const uint8_t * row) { return (const float *) row; }
static inline const int32_t * act_corr(const uint8_t * row, int64_t nb) { return (const int32_t *) (row + 4 * nb); }
static inline const int8_t *  act_values(const uint8_t * row, int64_t nb) { return (const int8_t *) (row + 8 * nb); }

// Quantises one row of k floats, the same numbers as ggml's x86 quantize_row_q8_0.
static inline void quantize_row(const float * x, uint8_t * row, int64_t k) {
    const int64_t nb   = k / QK;
    float *       d    = (float *) row;
    int32_t *     corr = (int32_t *) (row + 4 * nb);
    int8_t *      q    = (int8_t *) (row + 8 * nb);
    for (int64_t b = 0; b < nb; b++, x += QK, q += QK) {
        __m256 v0 = _mm256_loadu_ps(x);
        __m256 v1 = _mm256_loadu_ps(x + 8);
        __m256 v2 = _mm256_loadu_ps(x + 16);
        __m256 v3 = _mm256_loadu_ps(x + 24);

        const __m256 sign = _mm256_set1_ps(-0.0f);
        __m256       amax = _mm256_andnot_ps(sign, v0);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v1));
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v2));
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v3));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(amax, 1), _mm256_castps256_ps128(amax));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float m = _mm_cvtss_f32(m4);

        // The scale the dot products use is the fp16-rounded one, as in block_q8_0.
        d[b] = _cvtsh_ss(_cvtss_sh(m / 127.f, 0));
        const __m256 mul = _mm256_set1_ps(m != 0.0f ? 127.f / m : 0.0f);

        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), _MM_ROUND_NEAREST));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), _MM_ROUND_NEAREST));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), _MM_ROUND_NEAREST));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), _MM_ROUND_NEAREST));

        // Block sum for the unsigned-times-signed correction.
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_hadd_epi32(s4, s4);
        s4 = _mm_hadd_epi32(s4, s4);
        corr[b] = 128 * _mm_cvtsi128_si32(s4);

        i0 = _mm256_packs_epi32(i0, i1);
        i2 = _mm256_packs_epi32(i2, i3);
        i0 = _mm256_packs_epi16(i0, i2);
        i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *) q, i0);
    }
}

// ---------------------------------------------------------------------------------------------
// Kernels: C[m][n] = sum over blocks of d_w[n][b] * d_a[m][b] * (integer block dot product)
// for m < nact activation rows (stride lda bytes) and the rows of one or more full groups.

#    if defined(Q8X16_AVX512VNNI)

// MR activation rows x 2 groups (32 weight rows).
template <int MR>
static inline void tile_2g(int64_t nb, const uint8_t * w0, const uint8_t * w1, const uint8_t * a, size_t lda,
                           float * c, size_t ldc) {
    __m512 acc[MR][2];
    for (int m = 0; m < MR; m++) {
        acc[m][0] = _mm512_setzero_ps();
        acc[m][1] = _mm512_setzero_ps();
    }
    const size_t gstride = NR * QBYTES;  // bytes per block in a full group
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t * q0 = w0 + b * gstride + 2 * NR;
        const uint8_t * q1 = w1 + b * gstride + 2 * NR;
        __m512i         iacc[MR][2];
        for (int m = 0; m < MR; m++) {
            iacc[m][0] = _mm512_setzero_si512();
            iacc[m][1] = _mm512_setzero_si512();
        }
        for (int s = 0; s < STEPS; s++) {
            const __m512i x0 = _mm512_loadu_si512((const void *) (q0 + 64 * s));
            const __m512i x1 = _mm512_loadu_si512((const void *) (q1 + 64 * s));
            for (int m = 0; m < MR; m++) {
                int32_t v;
                memcpy(&v, act_values(a + m * lda, nb) + b * QK + 4 * s, 4);
                const __m512i y = _mm512_set1_epi32(v);
                iacc[m][0]      = _mm512_dpbusd_epi32(iacc[m][0], x0, y);
                iacc[m][1]      = _mm512_dpbusd_epi32(iacc[m][1], x1, y);
            }
        }
        const __m512 d0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (w0 + b * gstride)));
        const __m512 d1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (w1 + b * gstride)));
        for (int m = 0; m < MR; m++) {
            const uint8_t * row = a + m * lda;
            const __m512i   cr  = _mm512_set1_epi32(act_corr(row, nb)[b]);
            const __m512    da  = _mm512_set1_ps(act_scales(row)[b]);
            acc[m][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(iacc[m][0], cr)), _mm512_mul_ps(d0, da),
                                        acc[m][0]);
            acc[m][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(iacc[m][1], cr)), _mm512_mul_ps(d1, da),
                                        acc[m][1]);
        }
    }
    for (int m = 0; m < MR; m++) {
        _mm512_storeu_ps(c + m * ldc, acc[m][0]);
        _mm512_storeu_ps(c + m * ldc + NR, acc[m][1]);
    }
}

// MR activation rows x 1 group (16 weight rows).
template <int MR>
static inline void tile_1g(int64_t nb, const uint8_t * w0, const uint8_t * a, size_t lda, float * c, size_t ldc) {
    __m512 acc[MR];
    for (int m = 0; m < MR; m++) {
        acc[m] = _mm512_setzero_ps();
    }
    const size_t gstride = NR * QBYTES;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t * q0 = w0 + b * gstride + 2 * NR;
        __m512i         iacc[MR];
        for (int m = 0; m < MR; m++) {
            iacc[m] = _mm512_setzero_si512();
        }
        for (int s = 0; s < STEPS; s++) {
            const __m512i x0 = _mm512_loadu_si512((const void *) (q0 + 64 * s));
            for (int m = 0; m < MR; m++) {
                int32_t v;
                memcpy(&v, act_values(a + m * lda, nb) + b * QK + 4 * s, 4);
                iacc[m] = _mm512_dpbusd_epi32(iacc[m], x0, _mm512_set1_epi32(v));
            }
        }
        const __m512 d0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (w0 + b * gstride)));
        for (int m = 0; m < MR; m++) {
            const uint8_t * row = a + m * lda;
            const __m512i   cr  = _mm512_set1_epi32(act_corr(row, nb)[b]);
            const __m512    da  = _mm512_set1_ps(act_scales(row)[b]);
            acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(iacc[m], cr)), _mm512_mul_ps(d0, da), acc[m]);
        }
    }
    for (int m = 0; m < MR; m++) {
        _mm512_storeu_ps(c + m * ldc, acc[m]);
    }
}

#    else  // 256-bit kernels: AVX-VNNI or AVX2

// The integer dot product of 8 weight rows (x: 8 lanes of 4 unsigned bytes, q + 128) with 4
// activation values broadcast in y, added to acc.
static inline __m256i dot4(__m256i acc, __m256i x, __m256i y) {
#        if defined(Q8X16_AVXVNNI)
    return _mm256_dpbusd_avx_epi32(acc, x, y);
#        else
    // No VNNI: vpmaddubsw would overflow int16 with q + 128, so take the signed weights back
    // and use |w| * sign(a, w), whose pair sums stay within 2 * 127 * 127.
    const __m256i w  = _mm256_xor_si256(x, _mm256_set1_epi8((char) 0x80));
    const __m256i p  = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(y, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
#        endif
}

// The correction subtracted from a block's integer sum (none without VNNI: exact products).
static inline __m256i correction(const uint8_t * row, int64_t nb, int64_t b) {
#        if defined(Q8X16_AVXVNNI)
    return _mm256_set1_epi32(act_corr(row, nb)[b]);
#        else
    (void) row;
    (void) nb;
    (void) b;
    return _mm256_setzero_si256();
#        endif
}

// MR activation rows x 8 weight rows: half h (0 or 1) of one group.
template <int MR>
static inline void tile_half(int64_t nb, const uint8_t * w0, int h, const uint8_t * a, size_t lda, float * c,
                             size_t ldc) {
    __m256 acc[MR];
    for (int m = 0; m < MR; m++) {
        acc[m] = _mm256_setzero_ps();
    }
    const size_t gstride = NR * QBYTES;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t * q0 = w0 + b * gstride + 2 * NR + 32 * h;
        __m256i         iacc[MR];
        for (int m = 0; m < MR; m++) {
            iacc[m] = _mm256_setzero_si256();
        }
        for (int s = 0; s < STEPS; s++) {
            const __m256i x0 = _mm256_loadu_si256((const __m256i *) (q0 + 64 * s));
            for (int m = 0; m < MR; m++) {
                int32_t v;
                memcpy(&v, act_values(a + m * lda, nb) + b * QK + 4 * s, 4);
                iacc[m] = dot4(iacc[m], x0, _mm256_set1_epi32(v));
            }
        }
        const __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (w0 + b * gstride + 16 * h)));
        for (int m = 0; m < MR; m++) {
            const uint8_t * row = a + m * lda;
            const __m256    da  = _mm256_set1_ps(act_scales(row)[b]);
            acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(iacc[m], correction(row, nb, b))),
                                     _mm256_mul_ps(d0, da), acc[m]);
        }
    }
    for (int m = 0; m < MR; m++) {
        _mm256_storeu_ps(c + m * ldc + 8 * h, acc[m]);
    }
}

#    endif

// The rows of a last, partial group (r < 16 rows), one value at a time: rare (all weight
// matrices of the models we know have multiples of 16 rows), so kept simple.
// Not auto-vectorised: GCC 12 at -O3 with -mavxvnni turns this byte dot product into vpdpbusd
// and gets the signedness wrong (seen with GCC 12.2; the kernel unit test catches it).
#    if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-vectorize")))
#    endif
static inline void tail_group(int64_t nb, int64_t r, const uint8_t * w, const uint8_t * a, size_t lda, int64_t nact,
                              float * c, size_t ldc) {
    const size_t gstride = (size_t) r * QBYTES;
    for (int64_t m = 0; m < nact; m++) {
        const uint8_t * row = a + m * lda;
        for (int64_t i = 0; i < r; i++) {
            float sum = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t * blk = w + b * gstride;
                uint16_t        h;
                memcpy(&h, blk + 2 * i, 2);
                const int8_t * qa   = act_values(row, nb) + b * QK;
                int32_t        isum = 0;
                for (int s = 0; s < STEPS; s++) {
                    for (int j = 0; j < 4; j++) {
                        isum += (int32_t) (int8_t) (blk[2 * r + 4 * r * s + 4 * i + j] ^ 0x80) * qa[4 * s + j];
                    }
                }
                sum += (float) isum * (_cvtsh_ss(h) * act_scales(row)[b]);
            }
            c[m * ldc + i] = sum;
        }
    }
}

// C (nact x nrows, row stride ldc floats) = activations (nact rows, stride lda) x the repacked
// weight rows [0, nrows) starting at w (which must be the start of a group).
static inline void gemm(int64_t k, const void * vw, int64_t nrows, const uint8_t * a, size_t lda, int64_t nact,
                        float * c, size_t ldc) {
    const int64_t   nb     = k / QK;
    const uint8_t * w      = (const uint8_t *) vw;
    const int64_t   nfull  = nrows / NR;
    const size_t    gbytes = (size_t) NR * nb * QBYTES;

#    if defined(Q8X16_AVX512VNNI)
    constexpr int MR = 4;
    int64_t       g  = 0;
    for (; g + 2 <= nfull; g += 2) {
        const uint8_t * w0 = w + g * gbytes;
        int64_t         m  = 0;
        for (; m + MR <= nact; m += MR) {
            tile_2g<MR>(nb, w0, w0 + gbytes, a + m * lda, lda, c + m * ldc + g * NR, ldc);
        }
        switch (nact - m) {
            case 3: tile_2g<3>(nb, w0, w0 + gbytes, a + m * lda, lda, c + m * ldc + g * NR, ldc); break;
            case 2: tile_2g<2>(nb, w0, w0 + gbytes, a + m * lda, lda, c + m * ldc + g * NR, ldc); break;
            case 1: tile_2g<1>(nb, w0, w0 + gbytes, a + m * lda, lda, c + m * ldc + g * NR, ldc); break;
            default: break;
        }
    }
    for (; g < nfull; g++) {
        const uint8_t * w0 = w + g * gbytes;
        int64_t         m  = 0;
        for (; m + 8 <= nact; m += 8) {
            tile_1g<8>(nb, w0, a + m * lda, lda, c + m * ldc + g * NR, ldc);
        }
        for (; m < nact; m++) {
            tile_1g<1>(nb, w0, a + m * lda, lda, c + m * ldc + g * NR, ldc);
        }
    }
#    else
    constexpr int MR = 4;
    for (int64_t g = 0; g < nfull; g++) {
        const uint8_t * w0 = w + g * gbytes;
        for (int h = 0; h < 2; h++) {
            int64_t m = 0;
            for (; m + MR <= nact; m += MR) {
                tile_half<MR>(nb, w0, h, a + m * lda, lda, c + m * ldc + g * NR, ldc);
            }
            for (; m < nact; m++) {
                tile_half<1>(nb, w0, h, a + m * lda, lda, c + m * ldc + g * NR, ldc);
            }
        }
    }
#    endif
    if (nrows > nfull * NR) {
        tail_group(nb, nrows - nfull * NR, w + nfull * gbytes, a, lda, nact, c + nfull * NR, ldc);
    }
}

}  // namespace q8x16

#endif  // Q8X16_AVAILABLE
