// Unit test of the SIMD packing that our ggml patch adds to the tiled flash attention
// (vendor/llama-cpp-sys-2/llama.cpp/ggml/src/ggml-cpu/arch/x86/fa_pack.h), built by
// tests/kernels.rs with AVX-512: every result must equal the scalar loops it replaced, bit for
// bit (F16 to F32 conversion is exact).
#include "fa_pack.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

static std::mt19937 rng(4321);

static int failures = 0;

static void check(bool ok, const char * what, int a, int b) {
    if (!ok && failures++ < 20) {
        std::printf("FAIL %s (%d, %d)\n", what, a, b);
    }
}

// The scalar reference conversion (ggml's table holds these same values).
static float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

static uint16_t random_f16() {
    const float v = std::uniform_real_distribution<float>(-8.0f, 8.0f)(rng);
    return _cvtss_sh(v, 0);
}

static bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

static void test_transpose() {
    float in[16][16], out[16][16];
    for (auto & row : in) {
        for (float & v : row) {
            v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
        }
    }
    __m512 r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(in[i]);
    ggml_fa_transpose_16x16(r);
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(out[i], r[i]);
    for (int i = 0; i < 16; i++) {
        for (int j = 0; j < 16; j++) check(same_bits(out[i][j], in[j][i]), "transpose", i, j);
    }
}

// Rows of DK F16 values at a stride of `stride` bytes (more than a row: other heads between).
static void test_pack_k(int kv_tile, int DK, int stride_values) {
    const int KV_TILE = 64;
    std::vector<uint16_t> k(kv_tile * stride_values);
    for (uint16_t & v : k) v = random_f16();
    std::vector<float> packed(DK * KV_TILE, NAN);
    ggml_fa_pack_k_f16_transposed(packed.data(), KV_TILE, (const char *) k.data(),
            stride_values * sizeof(uint16_t), kv_tile, DK);
    const int padded = (kv_tile + 15) / 16 * 16;
    for (int dk = 0; dk < DK; dk++) {
        for (int tk = 0; tk < KV_TILE; tk++) {
            const float got = packed[dk * KV_TILE + tk];
            if (tk < kv_tile) {
                check(same_bits(got, f16_to_f32(k[tk * stride_values + dk])), "pack K", dk, tk);
            } else if (tk < padded) {
                check(got == 0.0f, "pack K zero padding", dk, tk);
            } else {
                check(std::isnan(got), "pack K wrote past its 16-column groups", dk, tk);
            }
        }
    }
}

static void test_mask_row(int n, float slope, int live_at) {
    std::vector<uint16_t> mask(n, 0xFC00); // -inf
    if (live_at >= 0) {
        mask[live_at] = random_f16();
    }
    std::vector<float> got(n);
    const bool live = ggml_fa_mask_row_f16(got.data(), mask.data(), n, slope);
    check(live == (live_at >= 0), "mask liveness", n, live_at);
    for (int i = 0; i < n; i++) {
        check(same_bits(got[i], slope * f16_to_f32(mask[i])), "mask value", n, i);
    }
}

int main() {
    test_transpose();
    int shapes = 0;
    for (int kv_tile : {1, 7, 16, 17, 33, 48, 63, 64}) {
        for (int DK : {16, 64, 128, 256}) {
            for (int extra : {0, 16, 8 * 128}) {
                test_pack_k(kv_tile, DK, DK + extra);
                shapes++;
            }
        }
    }
    for (float slope : {1.0f, 0.5f}) {
        for (int live_at : {-1, 0, 15, 16, 63}) {
            test_mask_row(64, slope, live_at);
            shapes++;
        }
    }
    if (failures) {
        std::printf("%d failures\n", failures);
        return 1;
    }
    std::printf("fa_pack: %d shapes passed\n", shapes);
    return 0;
}
