//! The interleaved Q8_0 kernels that our ggml patch adds for x86
//! (`vendor/llama-cpp-sys-2/llama.cpp/ggml/src/ggml-cpu/arch/x86/q8_0x16.h`, see
//! `vendor/PATCHES.md`), checked against scalar references by a C++ program
//! (`tests/kernels/q8_0x16.cpp`) compiled once per instruction set that this CPU can run, with
//! the optimisation level ggml is built with: the repack is a lossless permutation, the
//! activation quantisation gives ggml's own numbers bit for bit, and the products match a
//! double-precision Q8_0 dot product on shapes whose rows are not a multiple of the 16-row
//! interleave, with 1 to 33 activation rows and 1 to 96 blocks. The same harness checks the
//! interleaved F16 kernels (`f16x16.h`, `tests/kernels/f16x16.cpp`) and the SIMD packing of the
//! flash-attention patch (`fa_pack.h`, `tests/kernels/fa_pack.cpp`).

#![cfg(target_arch = "x86_64")]

use std::path::{Path, PathBuf};
use std::process::Command;

fn header_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vendor/llama-cpp-sys-2/llama.cpp/ggml/src/ggml-cpu/arch/x86")
}

/// Compiles a kernel test (`tests/kernels/{program}.cpp`) for one instruction set and runs it;
/// returns its output.
fn build_and_run(program: &str, name: &str, flags: &[&str]) -> String {
    let exe = build(program, name, flags);
    let run = Command::new(&exe).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{name} kernels disagree with the reference:\n{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

/// Compiles a kernel test (`tests/kernels/{program}.cpp`) for one instruction set; returns the
/// program's path.
fn build(program: &str, name: &str, flags: &[&str]) -> PathBuf {
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{program}-{name}"));
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let out = Command::new(&cxx)
        .args(["-O3", "-std=c++17"])
        .args(flags)
        .arg("-I")
        .arg(header_dir())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/kernels/{program}.cpp")))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("running the C++ compiler `{cxx}` (set CXX): {e}"));
    assert!(
        out.status.success(),
        "compiling the {name} kernel test failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Builds and runs `program` for every (name, flags, supported) variant this CPU supports;
/// returns the names run. Each program names the variant it was built as, so its output also
/// shows that the flags selected the intended one.
fn run_variants<'a>(program: &str, variants: &[(&'a str, &[&str], bool)]) -> Vec<&'a str> {
    let mut ran = Vec::new();
    for &(name, flags, supported) in variants {
        if !supported {
            eprintln!("this CPU cannot run the {name} kernels: not tested here");
            continue;
        }
        let out = build_and_run(program, name, flags);
        assert!(
            out.starts_with(&format!("{name}: ")) && out.contains("shapes passed"),
            "{out}"
        );
        ran.push(name);
    }
    ran
}

#[test]
fn q8_0x16_kernels_match_the_scalar_reference_on_every_instruction_set_this_cpu_runs() {
    let avx2 = std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c");
    let variants: [(&str, &[&str], bool); 3] = [
        ("avx2", &["-march=x86-64-v3"], avx2),
        (
            "avxvnni",
            &["-march=x86-64-v3", "-mavxvnni"],
            avx2 && std::arch::is_x86_feature_detected!("avxvnni"),
        ),
        (
            "avx512vnni",
            &["-march=x86-64-v4", "-mavx512vnni"],
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512vnni")
                && avx2,
        ),
    ];
    let ran = run_variants("q8_0x16", &variants);
    // Below AVX2 ggml keeps its own Q8_0 path, so there is nothing of ours to test.
    assert_eq!(ran.is_empty(), !avx2, "variants run: {ran:?}");
}

/// The interleaved F16 kernels (`f16x16.h`): the repack is a lossless permutation, and every
/// output equals, bit for bit, one FP32 FMA chain over k (`sum = fma(a, w, sum)`, F16 weights
/// converted exactly, F32 activations), and lies within FP32 accumulation error of the exact
/// product; for 1 to 97 activation rows, weight rows not a multiple of the 16-row group, and K
/// below, at and past the 256-value panel and not a multiple of 8.
#[test]
fn f16x16_kernels_match_sequential_fp32_fma_on_every_instruction_set_this_cpu_runs() {
    let avx2 = std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c");
    let variants: [(&str, &[&str], bool); 2] = [
        ("avx2", &["-march=x86-64-v3"], avx2),
        (
            "avx512",
            &["-march=x86-64-v4"],
            avx2 && std::arch::is_x86_feature_detected!("avx512f"),
        ),
    ];
    let ran = run_variants("f16x16", &variants);
    // Below AVX2 ggml keeps its own F16 path, so there is nothing of ours to test.
    assert_eq!(ran.is_empty(), !avx2, "variants run: {ran:?}");
}

/// gguf-embed's writer of prepacked F16 copies (`gguf::f16x16::repack`, in Rust) lays a tensor
/// out exactly as ggml's `f16x16::repack` does at load, byte for byte, on shapes with partial
/// 16-row groups and K not a multiple of the kernel's 8-value step: a copy written by one and
/// read by the other computes with the weights in the right places.
#[test]
fn the_rust_f16x16_permutation_is_the_one_ggml_repacks_with() {
    if !(std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c"))
    {
        eprintln!("this CPU cannot run the f16x16 kernels: not tested here");
        return;
    }
    let exe = build("f16x16", "avx2", &["-march=x86-64-v3"]);
    for (n, k) in [
        (16u64, 8u64),
        (1, 1),
        (7, 3),
        (17, 9),
        (40, 64),
        (57, 257),
        (1024, 1024),
    ] {
        let source: Vec<u8> = (0..n * k)
            .map(|e: u64| ((40503 * e + 17) & 0xffff) as u16)
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut rust = vec![0; source.len()];
        gguf_embed::gguf::f16x16::repack(&source, &mut rust, n as usize, k as usize);
        let run = Command::new(&exe)
            .args(["repack", &n.to_string(), &k.to_string()])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(run.stdout.len(), source.len(), "{n} x {k}");
        assert!(run.stdout == rust, "{n} x {k}: the layouts differ");
        assert!(rust != source || n == 1, "{n} x {k} was not permuted");
    }
}

/// The SIMD packing our patch adds to ggml's tiled flash attention (`fa_pack.h`: the K tile
/// converted and transposed 16x16 in registers, the mask tile converted and tested) gives the
/// scalar loops' values bit for bit, for tiles of 1 to 64 keys, head sizes 16 to 256 and
/// strided rows. Only AVX-512 builds use it.
#[test]
fn flash_attention_packing_matches_the_scalar_loops_it_replaces() {
    if !(std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("f16c"))
    {
        eprintln!("this CPU has no AVX-512: the packing is not used or tested here");
        return;
    }
    let out = build_and_run("fa_pack", "avx512", &["-march=x86-64-v4"]);
    assert!(
        out.starts_with("fa_pack: ") && out.contains("shapes passed"),
        "{out}"
    );
}
