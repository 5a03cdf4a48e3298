// F16 x F32 matrix products for x86 on an interleaved layout (gguf-embed patch, see PATCHES.md).
//
// ggml runs F16 weight products on x86 through llamafile's tinyBLAS, after rounding the
// activations to F16. Its inner step converts both operands with vcvtph2ps (4 weight rows and
// 6 activation rows per 16 values: 10 conversions for 24 FMAs), and on Intel cores a 512-bit
// conversion issues on the same two ports as the FMAs, so it reaches about 35-45% of the FP32
// FMA peak. Here the weights are repacked, losslessly, so that 32 bytes hold one value of 16
// consecutive weight rows; a panel of 32 rows x 256 values is converted to F32 once into a
// stack buffer (it stays in L1) and then reused by every register tile of up to 96 activation
// rows, so the inner loop is 2 weight loads, 12 broadcasts and 24 FMAs, almost nothing but
// FMAs. The activations are used as F32 (broadcast one value at a time), not rounded to F16.
//
// Layout of a repacked tensor with N rows of K F16 values:
//   rows are taken in groups of 16 (the last group may hold r < 16 rows);
//   group g starts at element g * 16 * K and holds, for k = 0 .. K-1 in order, value k of each
//   of its r rows, row by row.
//   The size is exactly N * K * 2 bytes, the F16 tensor's own size; the values are the file's.
//
// Numbers: every output is one FP32 FMA chain in order of k, starting from 0 (partial sums are
// kept in C between panels, which does not round them), so each output equals, bit for bit,
// the scalar loop `sum = fmaf(a[k], w[k], sum)`: no F16 arithmetic, no reassociation.
//
// Compiled for the instruction set of the translation unit, like the rest of ggml-cpu:
//   F16X16_AVX512  AVX-512F: 16 rows in one zmm; tiles of up to 12 activation rows x 32 rows
//   F16X16_AVX2    AVX2 + FMA + F16C: 16 rows in two ymm; tiles of up to 6 x 16
//
// This header is self-contained (no ggml headers) so that the kernel unit test
// (tests/kernels/f16x16.cpp in gguf-embed) compiles it once per instruction set.

#pragma once

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__AVX512F__) && defined(__FMA__) && defined(__F16C__)
#    define F16X16_AVX512    1
#    define F16X16_AVAILABLE 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#    define F16X16_AVX2      1
#    define F16X16_AVAILABLE 1
#endif

#if defined(F16X16_AVAILABLE)

namespace f16x16 {

static constexpr int NR = 16;   // weight rows per group
static constexpr int KC = 256;  // values per panel: 32 rows x 256 x 4 bytes = 32 KiB, in L1
#    if defined(F16X16_AVX512)
static constexpr int NG = 2;    // groups per panel (32 weight rows)
static constexpr int MR = 12;   // activation rows per register tile: 24 accumulators of 32
#    else
static constexpr int NG = 1;    // one group, as two ymm halves
static constexpr int MR = 6;    // 12 accumulators of 16 registers
#    endif
// Activation rows per block: a block (96 x K floats, 384 KiB at K = 1024) stays in L2 while
// every panel of weights passes over it, and each converted panel serves 8 tiles.
static constexpr int MB = 8 * MR;

static inline const char * isa_name() {
#    if defined(F16X16_AVX512)
    return "avx512";
#    else
    return "avx2";
#    endif
}

// ---------------------------------------------------------------------------------------------
// Weights

// Repacks rows [0, nrows) of k F16 values (row stride k) into the layout above; dst + g*16*k
// is group g. Transposes 8 values x 8 rows at a time in 128-bit registers (the loader repacks
// the whole model, so a value-at-a-time loop would add a second to start-up).
static inline void repack(const uint16_t * src, uint16_t * dst, int64_t nrows, int64_t k) {
    for (int64_t g = 0; g * NR < nrows; g++) {
        const int64_t    r   = nrows - g * NR < NR ? nrows - g * NR : NR;
        const uint16_t * s   = src + g * NR * k;
        uint16_t *       out = dst + g * NR * k;
        int64_t          kk  = 0;
        if (r == NR) {
            for (; kk + 8 <= k; kk += 8) {
                for (int h = 0; h < 2; h++) {
                    // rows 8h .. 8h+7, values kk .. kk+7
                    __m128i x[8];
                    for (int i = 0; i < 8; i++) {
                        x[i] = _mm_loadu_si128((const __m128i *) (s + (8 * h + i) * k + kk));
                    }
                    const __m128i a0 = _mm_unpacklo_epi16(x[0], x[1]), a1 = _mm_unpackhi_epi16(x[0], x[1]);
                    const __m128i a2 = _mm_unpacklo_epi16(x[2], x[3]), a3 = _mm_unpackhi_epi16(x[2], x[3]);
                    const __m128i a4 = _mm_unpacklo_epi16(x[4], x[5]), a5 = _mm_unpackhi_epi16(x[4], x[5]);
                    const __m128i a6 = _mm_unpacklo_epi16(x[6], x[7]), a7 = _mm_unpackhi_epi16(x[6], x[7]);
                    const __m128i b0 = _mm_unpacklo_epi32(a0, a2), b1 = _mm_unpackhi_epi32(a0, a2);
                    const __m128i b2 = _mm_unpacklo_epi32(a1, a3), b3 = _mm_unpackhi_epi32(a1, a3);
                    const __m128i b4 = _mm_unpacklo_epi32(a4, a6), b5 = _mm_unpackhi_epi32(a4, a6);
                    const __m128i b6 = _mm_unpacklo_epi32(a5, a7), b7 = _mm_unpackhi_epi32(a5, a7);
                    // y[j]: value kk+j of the 8 rows
                    const __m128i y[8] = { _mm_unpacklo_epi64(b0, b4), _mm_unpackhi_epi64(b0, b4),
                                           _mm_unpacklo_epi64(b1, b5), _mm_unpackhi_epi64(b1, b5),
                                           _mm_unpacklo_epi64(b2, b6), _mm_unpackhi_epi64(b2, b6),
                                           _mm_unpacklo_epi64(b3, b7), _mm_unpackhi_epi64(b3, b7) };
                    for (int j = 0; j < 8; j++) {
                        _mm_storeu_si128((__m128i *) (out + (kk + j) * NR + 8 * h), y[j]);
                    }
                }
            }
        }
        for (; kk < k; kk++) {
            for (int64_t i = 0; i < r; i++) {
                out[kk * r + i] = s[i * k + kk];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kernels: C[m][n] = sum over k of a[m][k] * w[n][k], for m < nact activation rows (stride lda
// floats) and the rows of full groups.

// Converts values [k0, k0 + kc) of groups g .. g + ng - 1 (starting at w) into the F32 panel
// wf: for each k, the ng groups' 16 rows in order.
template <int ng>
static inline void convert_panel(const uint16_t * w, size_t gstride, int64_t k0, int64_t kc, float * wf) {
    for (int64_t kk = 0; kk < kc; kk++) {
        for (int j = 0; j < ng; j++) {
            const uint16_t * p = w + j * gstride + (k0 + kk) * NR;
            float *          q = wf + (kk * ng + j) * NR;
#    if defined(F16X16_AVX512)
            _mm512_store_ps(q, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) p)));
#    else
            _mm256_store_ps(q, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p)));
            _mm256_store_ps(q + 8, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (p + 8))));
#    endif
        }
    }
}

#    if defined(F16X16_AVX512)
using vec                  = __m512;
static constexpr int VW    = 16;  // floats per register
static inline vec    vzero() { return _mm512_setzero_ps(); }
static inline vec    vload(const float * p) { return _mm512_loadu_ps(p); }
static inline vec    vload_aligned(const float * p) { return _mm512_load_ps(p); }
static inline void   vstore(float * p, vec v) { _mm512_storeu_ps(p, v); }
static inline vec    vbroadcast(const float * p) { return _mm512_set1_ps(*p); }
static inline vec    vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
#    else
using vec                  = __m256;
static constexpr int VW    = 8;
static inline vec    vzero() { return _mm256_setzero_ps(); }
static inline vec    vload(const float * p) { return _mm256_loadu_ps(p); }
static inline vec    vload_aligned(const float * p) { return _mm256_load_ps(p); }
static inline void   vstore(float * p, vec v) { _mm256_storeu_ps(p, v); }
static inline vec    vbroadcast(const float * p) { return _mm256_broadcast_ss(p); }
static inline vec    vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
#    endif

// MR_ activation rows x ng groups over one panel of kc values; partial sums start from zero on
// the first panel and are read back from C on the others.
template <int MR_, int ng>
static inline void tile(int64_t kc, const float * wf, const float * a, size_t lda, float * c, size_t ldc,
                        bool first) {
    constexpr int NV = ng * NR / VW;  // registers across the tile's weight rows
    vec           acc[MR_][NV];
    for (int m = 0; m < MR_; m++) {
        for (int j = 0; j < NV; j++) {
            acc[m][j] = first ? vzero() : vload(c + m * ldc + j * VW);
        }
    }
    for (int64_t kk = 0; kk < kc; kk++) {
        vec wv[NV];
        for (int j = 0; j < NV; j++) {
            wv[j] = vload_aligned(wf + kk * ng * NR + j * VW);
        }
        for (int m = 0; m < MR_; m++) {
            const vec av = vbroadcast(a + m * lda + kk);
            for (int j = 0; j < NV; j++) {
                acc[m][j] = vfma(av, wv[j], acc[m][j]);
            }
        }
    }
    for (int m = 0; m < MR_; m++) {
        for (int j = 0; j < NV; j++) {
            vstore(c + m * ldc + j * VW, acc[m][j]);
        }
    }
}

// All nact rows of an activation block against one panel: full tiles, then one smaller tile
// for the rest (its row count must be known at compile time).
template <int ng>
static inline void tiles(int64_t kc, const float * wf, const float * a, size_t lda, int64_t nact, float * c,
                         size_t ldc, bool first) {
    int64_t m = 0;
    for (; m + MR <= nact; m += MR) {
        tile<MR, ng>(kc, wf, a + m * lda, lda, c + m * ldc, ldc, first);
    }
    a += m * lda;
    c += m * ldc;
    switch (nact - m) {
        case 0: break;
        case 1: tile<1, ng>(kc, wf, a, lda, c, ldc, first); break;
        case 2: tile<2, ng>(kc, wf, a, lda, c, ldc, first); break;
        case 3: tile<3, ng>(kc, wf, a, lda, c, ldc, first); break;
        case 4: tile<4, ng>(kc, wf, a, lda, c, ldc, first); break;
        case 5: tile<5, ng>(kc, wf, a, lda, c, ldc, first); break;
#    if defined(F16X16_AVX512)
        case 6: tile<6, ng>(kc, wf, a, lda, c, ldc, first); break;
        case 7: tile<7, ng>(kc, wf, a, lda, c, ldc, first); break;
        case 8: tile<8, ng>(kc, wf, a, lda, c, ldc, first); break;
        case 9: tile<9, ng>(kc, wf, a, lda, c, ldc, first); break;
        case 10: tile<10, ng>(kc, wf, a, lda, c, ldc, first); break;
        case 11: tile<11, ng>(kc, wf, a, lda, c, ldc, first); break;
#    endif
        default: break;
    }
}

// ng groups starting at w against all activation rows, panel by panel.
template <int ng>
static inline void groups(int64_t k, const uint16_t * w, const float * a, size_t lda, int64_t nact, float * c,
                          size_t ldc, float * wf) {
    for (int64_t k0 = 0; k0 < k; k0 += KC) {
        const int64_t kc = k - k0 < KC ? k - k0 : KC;
        convert_panel<ng>(w, (size_t) NR * k, k0, kc, wf);
        tiles<ng>(kc, wf, a + k0, lda, nact, c, ldc, k0 == 0);
    }
}

// The rows of a last, partial group (r < 16 rows), one value at a time, in the same order of
// operations as the vector kernels: rare (the weight matrices of the models we know have
// multiples of 16 rows), so kept simple.
static inline void tail_group(int64_t k, int64_t r, const uint16_t * w, const float * a, size_t lda, int64_t nact,
                              float * c, size_t ldc) {
    for (int64_t m = 0; m < nact; m++) {
        for (int64_t i = 0; i < r; i++) {
            float sum = 0.0f;
            for (int64_t kk = 0; kk < k; kk++) {
                sum = fmaf(a[m * lda + kk], _cvtsh_ss(w[kk * r + i]), sum);
            }
            c[m * ldc + i] = sum;
        }
    }
}

// C (nact x nrows, row stride ldc floats) = activations (nact rows of k floats, row stride lda
// floats) x the repacked weight rows [0, nrows) starting at w (the start of a group).
static inline void gemm(int64_t k, const uint16_t * w, int64_t nrows, const float * a, size_t lda, int64_t nact,
                        float * c, size_t ldc) {
    alignas(64) float wf[KC * NG * NR];  // the converted panel: 32 KiB (AVX-512), 16 KiB (AVX2)
    const int64_t     nfull   = nrows / NR;
    const size_t      gstride = (size_t) NR * k;
    for (int64_t m0 = 0; m0 < nact; m0 += MB) {
        const int64_t mn = nact - m0 < MB ? nact - m0 : MB;
        const float * am = a + m0 * lda;
        float *       cm = c + m0 * ldc;
        int64_t       g  = 0;
        for (; g + NG <= nfull; g += NG) {
            groups<NG>(k, w + g * gstride, am, lda, mn, cm + g * NR, ldc, wf);
        }
#    if defined(F16X16_AVX512)
        if (g < nfull) {  // an odd last full group
            groups<1>(k, w + g * gstride, am, lda, mn, cm + g * NR, ldc, wf);
        }
#    endif
    }
    if (nrows > nfull * NR) {
        tail_group(k, nrows - nfull * NR, w + nfull * gstride, a, lda, nact, c + nfull * NR, ldc);
    }
}

}  // namespace f16x16

#endif  // F16X16_AVAILABLE
