// Unit test and micro-benchmark of the interleaved Q8_0 kernels in the vendored ggml
// (vendor/llama-cpp-sys-2/llama.cpp/ggml/src/ggml-cpu/arch/x86/q8_0x16.h), built by
// tests/kernels.rs once per instruction set (-mavx2, -mavxvnni, -mavx512vnni ...).
//
//   q8_0x16            checks repack, activation quantisation and GEMM against scalar references
//                      and prints a digest of every product it computed
//   q8_0x16 bench M N K [reps]   prints GOP/s of the GEMM on one thread
//
// Two switches build the header otherwise than ggml does, to test it where ggml cannot:
//   Q8X16_TEST_EVEX_AS_AVXVNNI  the AVX-VNNI (256-bit, VEX vpdpbusd) kernels, with every VEX
//       vpdpbusd replaced by the EVEX one (_mm256_dpbusd_epi32: AVX512-VNNI + AVX512VL), so that
//       CPUs without AVX-VNNI but with AVX512-VNNI (Zen 4, Ice Lake servers) run the same source;
//   Q8X16_TEST_NO_VECTORIZE_WORKAROUND  without the header's `optimize("no-tree-vectorize")` on
//       tail_group, the workaround for GCC 12 turning its byte dot product into vpdpbusd with
//       the wrong signedness under -mavxvnni: the tests build it to show the bug is still
//       caught (with GCC 12) by the checks below.
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(Q8X16_TEST_EVEX_AS_AVXVNNI)
#    if !defined(__AVX512VNNI__) || !defined(__AVX512VL__)
#        error "Q8X16_TEST_EVEX_AS_AVXVNNI needs -mavx512vnni -mavx512vl"
#    endif
// The header picks its kernels from these macros: hide AVX512-VNNI so that it takes the
// 256-bit VNNI kernels, and map their VEX instruction to the EVEX one of the same semantics.
#    undef __AVX512VNNI__
#    define __AVXVNNI__             1
#    define _mm256_dpbusd_avx_epi32 _mm256_dpbusd_epi32
#endif
#if defined(Q8X16_TEST_NO_VECTORIZE_WORKAROUND)
// The header's only use of the attribute: __attribute__((optimize("..."))) becomes
// __attribute__(()), which GCC accepts and ignores. (Defined after every system header.)
#    define optimize(x)
#endif

#include "q8_0x16.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <time.h>
#include <vector>

#if !defined(Q8X16_AVAILABLE)
#    error "build with at least -mavx2 -mfma -mf16c"
#endif
#if defined(Q8X16_TEST_EVEX_AS_AVXVNNI) && !defined(Q8X16_AVXVNNI)
#    error "the EVEX build must select the AVX-VNNI kernels"
#endif

// The variant this program was built as: the header's instruction set, and the switches.
static const char * variant() {
#if defined(Q8X16_TEST_EVEX_AS_AVXVNNI) && defined(Q8X16_TEST_NO_VECTORIZE_WORKAROUND)
    return "avxvnni-evex-no-workaround";
#elif defined(Q8X16_TEST_EVEX_AS_AVXVNNI)
    return "avxvnni-evex";
#elif defined(Q8X16_TEST_NO_VECTORIZE_WORKAROUND)
    static char name[64];
    snprintf(name, sizeof name, "%s-no-workaround", q8x16::isa_name());
    return name;
#else
    return q8x16::isa_name();
#endif
}

// FNV-1a over the bits of every product computed: equal digests across variants mean
// bit-identical results.
static uint64_t digest = 0xcbf29ce484222325ull;

static void digest_floats(const float * x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        for (int byte = 0; byte < 4; byte++) {
            digest = (digest ^ ((u >> (8 * byte)) & 0xff)) * 0x100000001b3ull;
        }
    }
}

static std::mt19937 rng(1234);

static float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }

// Q8_0 weights as a file stores them: fp16 scale + 32 int8 (any byte, -128 included).
static std::vector<uint8_t> random_q8_0(int64_t n, int64_t k) {
    const int64_t        nb = k / 32;
    std::vector<uint8_t> w(n * nb * 34);
    for (int64_t i = 0; i < n * nb; i++) {
        uint16_t h = _cvtss_sh(uniform(1e-4f, 2e-2f), 0);
        memcpy(&w[i * 34], &h, 2);
        for (int j = 0; j < 32; j++) {
            w[i * 34 + 2 + j] = (uint8_t) (rng() & 0xff);
        }
    }
    return w;
}

// ggml's quantize_row_q8_0 semantics, one value at a time: d = amax/127 (fp16), q = round half
// to even of x * 127/amax.
static void ref_quantize(const float * x, int64_t k, std::vector<float> & d, std::vector<int32_t> & corr,
                         std::vector<int8_t> & q) {
    const int64_t nb = k / 32;
    d.resize(nb);
    corr.resize(nb);
    q.resize(k);
    for (int64_t b = 0; b < nb; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) {
            amax = std::fmax(amax, std::fabs(x[b * 32 + j]));
        }
        d[b]           = _cvtsh_ss(_cvtss_sh(amax / 127.f, 0));
        const float id = amax != 0 ? 127.f / amax : 0;
        int32_t     s  = 0;
        for (int j = 0; j < 32; j++) {
            q[b * 32 + j] = (int8_t) std::nearbyint(x[b * 32 + j] * id);
            s += q[b * 32 + j];
        }
        corr[b] = 128 * s;
    }
}

static int failures = 0;

#define CHECK(cond, ...)                                     \
    do {                                                     \
        if (!(cond)) {                                       \
            failures++;                                      \
            if (failures < 20) {                             \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
                fprintf(stderr, __VA_ARGS__);                \
                fprintf(stderr, "\n");                       \
            }                                                \
        }                                                    \
    } while (0)

static void check_shape(int64_t m, int64_t n, int64_t k) {
    const int64_t nb = k / 32;
    auto          w  = random_q8_0(n, k);

    // Repack is a permutation of the file's bytes (values XOR 0x80), and the same size.
    std::vector<uint8_t> packed(w.size(), 0xee);
    q8x16::repack(w.data(), packed.data(), n, k);
    for (int64_t row = 0; row < n; row++) {
        const int64_t   g   = row / q8x16::NR, i = row % q8x16::NR;
        const int64_t   r   = std::min<int64_t>(q8x16::NR, n - g * q8x16::NR);
        const uint8_t * grp = packed.data() + q8x16::group_offset(g, nb);
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t * blk = grp + b * r * 34;
            const uint8_t * src = &w[(row * nb + b) * 34];
            CHECK(memcmp(blk + 2 * i, src, 2) == 0, "scale of row %ld block %ld moved wrongly", (long) row, (long) b);
            for (int j = 0; j < 32; j++) {
                const uint8_t got = blk[2 * r + 4 * r * (j / 4) + 4 * i + j % 4] ^ 0x80;
                CHECK(got == src[2 + j], "value %d of row %ld block %ld", j, (long) row, (long) b);
            }
        }
    }

    // Activations: large and small magnitudes, an all-zero block, exact halves.
    std::vector<float> x(m * k);
    for (auto & v : x) {
        v = uniform(-3, 3) * (rng() % 7 == 0 ? 40.f : 1.f);
    }
    if (k >= 64) {
        for (int j = 0; j < 32; j++) {
            x[32 + j] = 0.0f;
        }
    }
    const size_t         lda = q8x16::act_row_size(k);
    std::vector<uint8_t> a(m * lda + 64);
    for (int64_t row = 0; row < m; row++) {
        q8x16::quantize_row(&x[row * k], &a[row * lda], k);
        std::vector<float>   d;
        std::vector<int32_t> corr;
        std::vector<int8_t>  q;
        ref_quantize(&x[row * k], k, d, corr, q);
        CHECK(memcmp(q8x16::act_scales(&a[row * lda]), d.data(), 4 * nb) == 0, "activation scales of row %ld",
              (long) row);
        CHECK(memcmp(q8x16::act_corr(&a[row * lda], nb), corr.data(), 4 * nb) == 0, "corrections of row %ld",
              (long) row);
        CHECK(memcmp(q8x16::act_values(&a[row * lda], nb), q.data(), k) == 0, "activation values of row %ld",
              (long) row);
    }

    // GEMM against two scalar references, into a strided output with guard values around it:
    // the Q8_0 dot product in double (how close to exact), and the kernels' own arithmetic
    // done one output at a time (bit for bit: every variant computes each output as one FP32
    // FMA chain over the blocks, acc = fma(float(integer block sum), d_w * d_a, acc), the
    // integer sums being exact).
    const int64_t      ldc = n + 5;
    std::vector<float> c(m * ldc, -7.0f);
    q8x16::gemm(k, packed.data(), n, a.data(), lda, m, c.data(), ldc);
    for (int64_t i = 0; i < m; i++) {
        const uint8_t * row = &a[i * lda];
        digest_floats(&c[i * ldc], n);
        for (int64_t j = 0; j < n; j++) {
            double ref = 0, mag = 0;
            float  chain = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                uint16_t h;
                memcpy(&h, &w[(j * nb + b) * 34], 2);
                // In double: GCC 12 miscompiles this byte dot product as int at -O2/-O3 with
                // -mavxvnni (it emits vpdpbusd with the wrong signedness). Integers below 2^53
                // are exact in double, and the sum (at most 32 * 128 * 127) in float.
                double isum = 0;
                for (int t = 0; t < 32; t++) {
                    isum += (double) (int8_t) w[(j * nb + b) * 34 + 2 + t] * q8x16::act_values(row, nb)[b * 32 + t];
                }
                const float scale = _cvtsh_ss(h) * q8x16::act_scales(row)[b];
                chain             = std::fmaf((float) isum, scale, chain);
                const double p    = isum * ((double) _cvtsh_ss(h) * q8x16::act_scales(row)[b]);
                ref += p;
                mag += std::fabs(p);
            }
            const float got = c[i * ldc + j];
            uint32_t    got_bits, chain_bits;
            memcpy(&got_bits, &got, 4);
            memcpy(&chain_bits, &chain, 4);
            CHECK(got_bits == chain_bits, "C[%ld][%ld] = %.9g, not the FMA chain's %.9g bit for bit (m=%ld n=%ld k=%ld)",
                  (long) i, (long) j, got, chain, (long) m, (long) n, (long) k);
            // float32 accumulation of nb block products: error within a few ulps of their magnitude.
            CHECK(std::fabs(got - ref) <= 4e-7 * (nb + 2) * mag + 1e-30, "C[%ld][%ld] = %.9g, reference %.9g (m=%ld n=%ld k=%ld)",
                  (long) i, (long) j, got, ref, (long) m, (long) n, (long) k);
        }
        for (int64_t j = n; j < ldc; j++) {
            CHECK(c[i * ldc + j] == -7.0f, "wrote past row end at C[%ld][%ld]", (long) i, (long) j);
        }
    }
}

static int bench(int64_t m, int64_t n, int64_t k, int reps) {
    auto                 w = random_q8_0(n, k);
    std::vector<uint8_t> packed(w.size());
    q8x16::repack(w.data(), packed.data(), n, k);
    const size_t         lda = q8x16::act_row_size(k);
    std::vector<float>   x(m * k);
    for (auto & v : x) {
        v = uniform(-1, 1);
    }
    std::vector<uint8_t> a(m * lda);
    for (int64_t row = 0; row < m; row++) {
        q8x16::quantize_row(&x[row * k], &a[row * lda], k);
    }
    std::vector<float> c(m * n);
    q8x16::gemm(k, packed.data(), n, a.data(), lda, m, c.data(), n);
    // Thread CPU time as well as wall time: on a shared machine the first is what the kernel costs.
    timespec   c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; r++) {
        q8x16::gemm(k, packed.data(), n, a.data(), lda, m, c.data(), n);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    const double cpu = (c1.tv_sec - c0.tv_sec) + 1e-9 * (c1.tv_nsec - c0.tv_nsec);
    const double ops = 2.0 * m * n * k * reps;
    printf("%s m=%ld n=%ld k=%ld: %.1f GOP/s per CPU second, %.1f GOP/s wall (%.3f ms per product)\n",
           q8x16::isa_name(), (long) m, (long) n, (long) k, ops / cpu / 1e9, ops / s / 1e9, s / reps * 1e3);
    return 0;
}

int main(int argc, char ** argv) {
    if (argc >= 5 && strcmp(argv[1], "bench") == 0) {
        return bench(atol(argv[2]), atol(argv[3]), atol(argv[4]), argc > 5 ? atoi(argv[5]) : 20);
    }
    const int64_t ms[] = { 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 33 };
    const int64_t ns[] = { 16, 32, 48, 64, 80, 1, 7, 23, 40, 57 };
    const int64_t ks[] = { 32, 64, 96, 160, 1024 };
    int           shapes = 0;
    for (int64_t k : ks) {
        for (int64_t n : ns) {
            for (int64_t m : ms) {
                check_shape(m, n, k);
                shapes++;
            }
        }
    }
    check_shape(64, 1024, 3072);
    shapes++;
    if (failures) {
        fprintf(stderr, "%s: %d failures\n", variant(), failures);
        return 1;
    }
    printf("%s: %d shapes passed, digest %016llx\n", variant(), shapes, (unsigned long long) digest);
    return 0;
}
