// Unit test and micro-benchmark of the interleaved F16 kernels in the vendored ggml
// (vendor/llama-cpp-sys-2/llama.cpp/ggml/src/ggml-cpu/arch/x86/f16x16.h), built by
// tests/kernels.rs once per instruction set (-march=x86-64-v3, -march=x86-64-v4).
//
//   f16x16                               checks repack and GEMM against scalar references
//   f16x16 bench M N K [trials]          prints GFLOP/s of the GEMM on one thread
//   f16x16 repack N K                    writes to stdout the repack of an N x K tensor whose
//                                        element e holds (40503 e + 17) mod 65536 (for
//                                        gguf-embed's writer of prepacked copies to compare)
//
// Built with -DF16X16_TINYBLAS and ggml's include directories, bench mode also runs ggml's own
// F16 path, llamafile's tinyBLAS (sgemm.cpp compiled into this program, with the few ggml
// functions it calls stubbed for one thread) on the same weights, alternating trials so that
// both see the same machine; for this CPU (AVX-512):
//   G=vendor/llama-cpp-sys-2/llama.cpp/ggml
//   c++ -O3 -std=c++17 -march=native -DNDEBUG -DF16X16_TINYBLAS -I$G/src/ggml-cpu/arch/x86 \
//       -I$G/src -I$G/src/ggml-cpu -I$G/include tests/kernels/f16x16.cpp -o /tmp/f16x16
//   chrt -f 10 /tmp/f16x16 bench 256 3072 1024
#include "f16x16.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <time.h>
#include <vector>

#if !defined(F16X16_AVAILABLE)
#    error "build with at least -mavx2 -mfma -mf16c"
#endif

#if defined(F16X16_TINYBLAS)
#    include "llamafile/sgemm.cpp"

#    include <atomic>
#    include <cstdarg>

// What sgemm.cpp needs from the rest of ggml, for one thread.
extern "C" {
float                   ggml_table_f32_f16[1 << 16];
static std::atomic<int> chunk_counter;

void ggml_threadpool_chunk_set(struct ggml_threadpool *, int value) { chunk_counter = value; }

int ggml_threadpool_chunk_add(struct ggml_threadpool *, int value) { return chunk_counter.fetch_add(value); }

void ggml_barrier(struct ggml_threadpool *) {}

void ggml_abort(const char * file, int line, const char * fmt, ...) {
    fprintf(stderr, "ggml_abort %s:%d: %s\n", file, line, fmt);
    abort();
}

void ggml_log_internal(enum ggml_log_level, const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}
}
#endif

static std::mt19937 rng(1234);

static float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }

// F16 weights as a file stores them: normal values of both signs and several magnitudes, some
// subnormals and zeros (F16 to F32 must be exact for every one of them).
static std::vector<uint16_t> random_f16(int64_t n) {
    std::vector<uint16_t> w(n);
    for (auto & v : w) {
        const uint32_t r = rng();
        if (r % 50 == 0) {
            v = (uint16_t) ((r >> 8) & 0x83ff);  // a subnormal or zero, either sign
        } else {
            v = _cvtss_sh(uniform(-1, 1) * (r % 7 == 0 ? 30.f : 0.05f), 0);
        }
    }
    return w;
}

static int failures = 0;

#define CHECK(cond, ...)                                             \
    do {                                                             \
        if (!(cond)) {                                               \
            failures++;                                              \
            if (failures < 20) {                                     \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
                fprintf(stderr, __VA_ARGS__);                        \
                fprintf(stderr, "\n");                               \
            }                                                        \
        }                                                            \
    } while (0)

static void check_shape(int64_t m, int64_t n, int64_t k) {
    const auto w = random_f16(n * k);

    // Repack is a permutation of the file's values, and the same size.
    std::vector<uint16_t> packed(n * k + 8, 0xeeee);
    f16x16::repack(w.data(), packed.data(), n, k);
    for (int64_t row = 0; row < n; row++) {
        const int64_t g = row / f16x16::NR, i = row % f16x16::NR;
        const int64_t r = std::min<int64_t>(f16x16::NR, n - g * f16x16::NR);
        for (int64_t kk = 0; kk < k; kk++) {
            CHECK(packed[g * f16x16::NR * k + kk * r + i] == w[row * k + kk], "value %ld of row %ld (n=%ld k=%ld)",
                  (long) kk, (long) row, (long) n, (long) k);
        }
    }
    for (int j = 0; j < 8; j++) {
        CHECK(packed[n * k + j] == 0xeeee, "repack wrote past the tensor (n=%ld k=%ld)", (long) n, (long) k);
    }

    // Activations in rows with a stride larger than k, large and small magnitudes, one row of
    // zeros; output into a strided C with guard values around it.
    const int64_t      lda = k + 3;
    std::vector<float> a(m * lda, NAN);
    for (int64_t i = 0; i < m; i++) {
        for (int64_t kk = 0; kk < k; kk++) {
            a[i * lda + kk] = i == 1 ? 0.0f : uniform(-3, 3) * (rng() % 7 == 0 ? 40.f : 1.f);
        }
    }
    const int64_t      ldc = n + 5;
    std::vector<float> c(m * ldc, -7.0f);
    f16x16::gemm(k, packed.data(), n, a.data(), lda, m, c.data(), ldc);

    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            // The kernels' order of operations, one FP32 FMA at a time: equal bit for bit.
            float  seq = 0.0f;
            double ref = 0, mag = 0;
            for (int64_t kk = 0; kk < k; kk++) {
                const float wv = _cvtsh_ss(w[j * k + kk]);
                seq            = std::fma(a[i * lda + kk], wv, seq);
                ref += (double) a[i * lda + kk] * wv;
                mag += std::fabs((double) a[i * lda + kk] * wv);
            }
            const float got = c[i * ldc + j];
            CHECK(memcmp(&got, &seq, 4) == 0, "C[%ld][%ld] = %.9g, sequential FMA %.9g (m=%ld n=%ld k=%ld)", (long) i,
                  (long) j, got, seq, (long) m, (long) n, (long) k);
            // And within FP32 accumulation error of the exact product (each of k roundings
            // at most 2^-24 of the running magnitude).
            CHECK(std::fabs(got - ref) <= 6e-8 * (k + 2) * mag, "C[%ld][%ld] = %.9g, reference %.9g (m=%ld n=%ld k=%ld)",
                  (long) i, (long) j, got, ref, (long) m, (long) n, (long) k);
        }
        for (int64_t j = n; j < ldc; j++) {
            CHECK(c[i * ldc + j] == -7.0f, "wrote past row end at C[%ld][%ld]", (long) i, (long) j);
        }
    }
}

static double cpu_seconds() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int bench(int64_t m, int64_t n, int64_t k, int trials) {
    const auto            w = random_f16(n * k);
    std::vector<uint16_t> packed(n * k);
    f16x16::repack(w.data(), packed.data(), n, k);
    std::vector<float> x(m * k);
    for (auto & v : x) {
        v = uniform(-1, 1);
    }
    std::vector<float> c(m * n);
    struct kernel {
        const char *          name;
        std::function<void()> run;
        std::vector<double>   seconds;
    };
    std::vector<kernel> kernels;
    kernels.push_back({ "f16x16", [&] { f16x16::gemm(k, packed.data(), n, x.data(), k, m, c.data(), n); }, {} });
#if defined(F16X16_TINYBLAS)
    // ggml's path for an F16 weight: activations rounded to F16 (from_float), then tinyBLAS.
    for (int i = 0; i < 65536; i++) {
        ggml_table_f32_f16[i] = _cvtsh_ss((uint16_t) i);
    }
    std::vector<uint16_t> xh(m * k);
    ggml_compute_params   params = { 0, 1, 0, nullptr, nullptr, false };
    kernels.push_back({ "tinyBLAS (+ activations to F16)",
                        [&] {
                            for (int64_t i = 0; i < m * k; i++) {
                                xh[i] = _cvtss_sh(x[i], 0);
                            }
                            if (!llamafile_sgemm(&params, n, m, k, w.data(), k, xh.data(), k, c.data(), n,
                                                 GGML_TYPE_F16, GGML_TYPE_F16, GGML_TYPE_F32)) {
                                fprintf(stderr, "tinyBLAS refused the shape\n");
                                exit(1);
                            }
                        },
                        {} });
#endif
    for (auto & kn : kernels) {
        kn.run();  // warm-up
    }
    // Thread CPU time, trials alternating between kernels: on a shared machine that is what
    // the kernel costs, and both kernels see the same interference. Best and median.
    for (int t = 0; t < trials; t++) {
        for (auto & kn : kernels) {
            const double t0 = cpu_seconds();
            kn.run();
            kn.seconds.push_back(cpu_seconds() - t0);
        }
    }
    const double flop = 2.0 * m * n * k;
    for (auto & kn : kernels) {
        std::sort(kn.seconds.begin(), kn.seconds.end());
        printf("%s %s m=%ld n=%ld k=%ld: best %.1f, median %.1f GFLOP/s per CPU second\n", f16x16::isa_name(), kn.name,
               (long) m, (long) n, (long) k, flop / kn.seconds[0] / 1e9, flop / kn.seconds[trials / 2] / 1e9);
    }
    return 0;
}

// The repack of a tensor every test can build: element e holds (40503 e + 17) mod 65536.
static int dump_repack(int64_t n, int64_t k) {
    std::vector<uint16_t> w(n * k), packed(n * k);
    for (int64_t e = 0; e < n * k; e++) {
        w[e] = (uint16_t) ((40503u * (uint64_t) e + 17u) & 0xffff);
    }
    f16x16::repack(w.data(), packed.data(), n, k);
    return fwrite(packed.data(), sizeof(uint16_t), packed.size(), stdout) == packed.size() ? 0 : 1;
}

int main(int argc, char ** argv) {
    if (argc >= 4 && strcmp(argv[1], "repack") == 0) {
        return dump_repack(atol(argv[2]), atol(argv[3]));
    }
    if (argc >= 5 && strcmp(argv[1], "bench") == 0) {
        return bench(atol(argv[2]), atol(argv[3]), atol(argv[4]), argc > 5 ? std::max(1, atoi(argv[5])) : 15);
    }
    // Rows: 1 to 13 (every remainder of a 12- or 6-row tile), past one 48- and one 96-row
    // block. Weight rows: full groups (odd and even counts), partial ones alone and after full
    // ones. K: below, at and past one 256-value panel, and not a multiple of 8 (the repack's
    // step).
    const int64_t ms[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 25, 50, 97 };
    const int64_t ns[] = { 16, 32, 48, 64, 1, 7, 23, 40, 57 };
    const int64_t ks[] = { 1, 7, 8, 64, 255, 256, 257, 600 };
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
        fprintf(stderr, "%s: %d failures\n", f16x16::isa_name(), failures);
        return 1;
    }
    printf("%s: %d shapes passed\n", f16x16::isa_name(), shapes);
    return 0;
}
