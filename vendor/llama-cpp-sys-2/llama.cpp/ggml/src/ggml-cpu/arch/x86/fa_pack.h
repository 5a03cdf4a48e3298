// SIMD packing for ggml-cpu's tiled flash attention (gguf-embed patch, see PATCHES.md), for
// builds with AVX-512F. Included by ops.cpp, and by tests/kernels/fa_pack.cpp in gguf-embed,
// which checks it against scalar references.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

// Why: the tiled flash attention's scalar loops (the K tile converted one value at a time
// through a lookup table and stored transposed, and the mask tile converted and tested one value
// at a time) took more time than its two matrix products. Both conversions are exact (F16 to
// F32), so the results are bit-identical to the scalar loops'.

// Transposes 16 rows of 16 floats in registers: afterwards r[i] holds what was column i.
static inline void ggml_fa_transpose_16x16(__m512 * r) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i]   = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i+1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i]   = _mm512_shuffle_ps(t[i],     t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i+1] = _mm512_shuffle_ps(t[i],     t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i+2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i+3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; ++i) {
        t[i]      = _mm512_shuffle_f32x4(r[i],     r[i + 4],  0x88);
        t[i + 4]  = _mm512_shuffle_f32x4(r[i],     r[i + 4],  0xdd);
        t[i + 8]  = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 4; ++i) {
        r[i]      = _mm512_shuffle_f32x4(t[i],     t[i + 8],  0x88);
        r[i + 4]  = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 8]  = _mm512_shuffle_f32x4(t[i],     t[i + 8],  0xdd);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
    }
}

// K_f32[dk][tk] = K[tk][dk] for the kv_tile F16 rows at k_rows (stride nbk1); DK % 16 == 0.
// Columns from kv_tile up to the next multiple of 16 get zeros (their scores are masked).
static inline void ggml_fa_pack_k_f16_transposed(float * K_f32, int kv_tile_sz, const char * k_rows,
        size_t nbk1, int kv_tile, int64_t DK) {
    for (int tk0 = 0; tk0 < kv_tile; tk0 += 16) {
        const int rows = std::min(16, kv_tile - tk0);
        for (int64_t dk0 = 0; dk0 < DK; dk0 += 16) {
            __m512 r[16];
            for (int j = 0; j < 16; ++j) {
                if (j < rows) {
                    const uint16_t * src = (const uint16_t *) (k_rows + (tk0 + j)*nbk1) + dk0;
                    r[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) src));
                } else {
                    r[j] = _mm512_setzero_ps();
                }
            }
            ggml_fa_transpose_16x16(r);
            for (int i = 0; i < 16; ++i) {
                _mm512_storeu_ps(K_f32 + (dk0 + i)*kv_tile_sz + tk0, r[i]);
            }
        }
    }
}

// dst[tk] = slope * mask[tk] for n (a multiple of 16) F16 values; returns whether any is not -inf.
static inline bool ggml_fa_mask_row_f16(float * dst, const uint16_t * mask, int n, float slope) {
    const __m512 vslope = _mm512_set1_ps(slope);
    const __m512 ninf   = _mm512_set1_ps(-INFINITY);
    __mmask16 live = 0;
    for (int tk = 0; tk < n; tk += 16) {
        const __m512 m = _mm512_mul_ps(vslope, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (mask + tk))));
        _mm512_storeu_ps(dst + tk, m);
        live |= _mm512_cmp_ps_mask(m, ninf, _CMP_NEQ_UQ);
    }
    return live != 0;
}
