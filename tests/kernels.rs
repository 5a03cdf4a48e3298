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
//!
//! Every Q8_0 variant gives the same products bit for bit (one FP32 FMA chain per output), so
//! their digests must agree. The AVX-VNNI variant (256-bit, VEX `vpdpbusd`: Intel client CPUs
//! since Alder Lake, which have no AVX-512) runs natively where the CPU has AVX-VNNI, and is
//! also built with the EVEX form of the same instruction for CPUs that have AVX512-VNNI
//! instead (Zen 4, Ice Lake and Sapphire Rapids servers), so that its logic is tested on
//! either. A variant this CPU can run is never skipped; one it cannot is skipped with a
//! message, and in CI (`GGUF_EMBED_REQUIRE_CPU_FEATURES`, see tests/common/cpu.rs) a skip for
//! a feature the machine has fails.

#![cfg(target_arch = "x86_64")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cpu;

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

/// One build of a kernel test: its name (which the program prints first), compiler flags,
/// and the CPU features it needs to run.
type Variant<'a> = (&'a str, &'a [&'a str], &'a [&'a str]);

/// Builds and runs `program` for every variant this CPU supports; returns the names run with
/// each one's output. Each program names the variant it was built as, so its output also
/// shows that the flags selected the intended one. A variant skipped for a feature that
/// `GGUF_EMBED_REQUIRE_CPU_FEATURES` names fails instead (tests/common/cpu.rs).
fn run_variants<'a>(program: &str, variants: &[Variant<'a>]) -> Vec<(&'a str, String)> {
    let mut ran = Vec::new();
    for &(name, flags, needs) in variants {
        if !cpu::has_all(needs) {
            eprintln!("this CPU cannot run the {name} kernels (needs {needs:?}): not tested here");
            continue;
        }
        let out = build_and_run(program, name, flags);
        assert!(
            out.starts_with(&format!("{name}: ")) && out.contains("shapes passed"),
            "{out}"
        );
        ran.push((name, out));
    }
    ran
}

const AVX2: &[&str] = &["avx2", "fma", "f16c"];
const AVX512_VNNI: &[&str] = &[
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512vnni",
];
const AVX_VNNI: &[&str] = &["avx2", "fma", "f16c", "avxvnni"];

/// The q8_0x16 builds: ggml's three (by the instruction sets a build enables) and the AVX-VNNI
/// kernels built with EVEX vpdpbusd (see tests/kernels/q8_0x16.cpp).
const Q8_0X16_VARIANTS: [Variant; 4] = [
    ("avx2", &["-march=x86-64-v3"], AVX2),
    ("avxvnni", &["-march=x86-64-v3", "-mavxvnni"], AVX_VNNI),
    (
        "avxvnni-evex",
        &[
            "-march=x86-64-v4",
            "-mavx512vnni",
            "-DQ8X16_TEST_EVEX_AS_AVXVNNI",
        ],
        AVX512_VNNI,
    ),
    (
        "avx512vnni",
        &["-march=x86-64-v4", "-mavx512vnni"],
        AVX512_VNNI,
    ),
];

/// The digest a kernel test printed (`..., digest XXXXXXXXXXXXXXXX`).
fn digest(out: &str) -> &str {
    out.trim()
        .rsplit_once("digest ")
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("no digest in {out:?}"))
}

/// The `vpdpbusd` instructions of a program's code on 256-bit registers, by encoding:
/// (VEX, EVEX). Read with objdump (binutils, which the C++ compiler needs anyway).
fn ymm_vpdpbusd(exe: &Path) -> (usize, usize) {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(exe)
        .output()
        .expect("objdump (binutils) is needed to check the kernels' instruction encodings");
    assert!(out.status.success(), "objdump {}", exe.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines = || {
        text.lines()
            .filter(|l| l.contains("vpdpbusd") && l.contains("%ymm"))
    };
    let vex = lines().filter(|l| l.contains("{vex}")).count();
    (vex, lines().count() - vex)
}

#[test]
fn q8_0x16_kernels_match_the_scalar_reference_on_every_instruction_set_this_cpu_runs() {
    let ran = run_variants("q8_0x16", &Q8_0X16_VARIANTS);
    let names: Vec<&str> = ran.iter().map(|(n, _)| *n).collect();
    eprintln!("q8_0x16 variants run: {names:?}");
    // Below AVX2 ggml keeps its own Q8_0 path, so there is nothing of ours to test.
    assert_eq!(
        ran.is_empty(),
        !cpu::has_all(AVX2),
        "variants run: {names:?}"
    );
    // The AVX-VNNI kernels' logic runs wherever either form of vpdpbusd does.
    if cpu::detect("avxvnni") || cpu::detect("avx512vnni") {
        assert!(
            names.iter().any(|n| n.starts_with("avxvnni")),
            "this CPU has VNNI but the AVX-VNNI kernels did not run: {names:?}"
        );
    }
    // Every variant computes each output as one FP32 FMA chain (each also checks that against
    // a scalar chain, bit for bit): the same products, bit for bit.
    if let Some((first, out)) = ran.first() {
        for (name, other) in &ran[1..] {
            assert_eq!(
                digest(other),
                digest(out),
                "{name} and {first} computed different products"
            );
        }
    }
}

/// The AVX-VNNI builds run the 256-bit kernels with the instruction encoding they claim: VEX
/// `vpdpbusd` (`{vex}` in objdump) for -mavxvnni, EVEX for the proof on AVX512-VNNI CPUs. A
/// build that took another path (or a compiler that encoded it otherwise) would pass the
/// numeric checks without testing what Alder Lake runs.
#[test]
fn the_avx_vnni_builds_use_vpdpbusd_on_256_bit_registers_in_the_intended_encoding() {
    // Compiled only (any x86 CPU can be checked), under names of their own: the test above
    // may be running the same variants at the same time.
    for (name, flags, _) in Q8_0X16_VARIANTS
        .iter()
        .filter(|(name, ..)| name.starts_with("avxvnni"))
    {
        let (vex, evex) = ymm_vpdpbusd(&build("q8_0x16", &format!("{name}-asm"), flags));
        if *name == "avxvnni" {
            assert!(vex > 0 && evex == 0, "{name}: {vex} VEX, {evex} EVEX");
        } else {
            assert!(vex == 0 && evex > 0, "{name}: {vex} VEX, {evex} EVEX");
        }
    }
}

/// GCC 12 at -O3 with VNNI enabled turns the byte dot product of `tail_group` (the rows of a
/// last, partial 16-row group) into vpdpbusd with the wrong signedness; q8_0x16.h keeps it
/// scalar with `optimize("no-tree-vectorize")`. Built without that attribute, the AVX-VNNI
/// kernels (VEX where the CPU runs them, and the EVEX build) must fail the checks when the
/// compiler is GCC 12: the workaround is still needed and the checks still catch the bug. With
/// other compilers the outcome is reported.
#[test]
fn the_gcc_vectoriser_workaround_is_needed_and_its_absence_is_caught() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let version = Command::new(&cxx).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let dump = Command::new(&cxx).arg("-dumpversion").output().unwrap();
    let major = String::from_utf8_lossy(&dump.stdout).trim().to_string();
    let gcc12 = !version.contains("clang") && major.split('.').next() == Some("12");
    let mut tried = 0;
    for (name, flags, needs) in [
        (
            "avxvnni-no-workaround",
            &["-march=x86-64-v3", "-mavxvnni"][..],
            AVX_VNNI,
        ),
        (
            "avxvnni-evex-no-workaround",
            &[
                "-march=x86-64-v4",
                "-mavx512vnni",
                "-DQ8X16_TEST_EVEX_AS_AVXVNNI",
            ][..],
            AVX512_VNNI,
        ),
    ] {
        if !cpu::has_all(needs) {
            eprintln!("this CPU cannot run {name}: not tested here");
            continue;
        }
        let mut flags = flags.to_vec();
        flags.push("-DQ8X16_TEST_NO_VECTORIZE_WORKAROUND");
        let run = Command::new(build("q8_0x16", name, &flags))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        eprintln!(
            "{name} ({}): {}",
            version.lines().next().unwrap_or("?"),
            if run.status.success() {
                "passes"
            } else {
                "fails"
            }
        );
        if gcc12 {
            assert!(
                !run.status.success() && stderr.contains("not the FMA chain's"),
                "{name} built by GCC 12 without the workaround passed (or crashed): the checks \
                 no longer catch the miscompilation, or it is gone\n{stderr}"
            );
        }
        tried += 1;
    }
    assert!(
        tried > 0 || !(cpu::detect("avxvnni") || cpu::detect("avx512vnni")),
        "a VNNI CPU built no variant without the workaround"
    );
}

/// The features CI says its machine has are all detected here (tests/common/cpu.rs): the
/// start of the rule that a test never skips for one of them.
#[test]
fn every_cpu_feature_that_ci_requires_is_detected() {
    let required = cpu::required();
    for feature in &required {
        assert!(cpu::has(feature), "{feature}");
    }
    eprintln!("required CPU features: {required:?}");
}

/// The interleaved F16 kernels (`f16x16.h`): the repack is a lossless permutation, and every
/// output equals, bit for bit, one FP32 FMA chain over k (`sum = fma(a, w, sum)`, F16 weights
/// converted exactly, F32 activations), and lies within FP32 accumulation error of the exact
/// product; for 1 to 97 activation rows, weight rows not a multiple of the 16-row group, and K
/// below, at and past the 256-value panel and not a multiple of 8.
#[test]
fn f16x16_kernels_match_sequential_fp32_fma_on_every_instruction_set_this_cpu_runs() {
    let variants: [Variant; 2] = [
        ("avx2", &["-march=x86-64-v3"], AVX2),
        (
            "avx512",
            &["-march=x86-64-v4"],
            &["avx2", "fma", "f16c", "avx512f"],
        ),
    ];
    let ran = run_variants("f16x16", &variants);
    let names: Vec<&str> = ran.iter().map(|(n, _)| *n).collect();
    // Below AVX2 ggml keeps its own F16 path, so there is nothing of ours to test.
    assert_eq!(
        ran.is_empty(),
        !cpu::has_all(AVX2),
        "variants run: {names:?}"
    );
}

/// gguf-embed's writer of prepacked F16 copies (`gguf::f16x16::repack`, in Rust) lays a tensor
/// out exactly as ggml's `f16x16::repack` does at load, byte for byte, on shapes with partial
/// 16-row groups and K not a multiple of the kernel's 8-value step: a copy written by one and
/// read by the other computes with the weights in the right places.
#[test]
fn the_rust_f16x16_permutation_is_the_one_ggml_repacks_with() {
    if !cpu::has_all(AVX2) {
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
    if !cpu::has_all(&["avx512f", "f16c"]) {
        eprintln!("this CPU has no AVX-512: the packing is not used or tested here");
        return;
    }
    let out = build_and_run("fa_pack", "avx512", &["-march=x86-64-v4"]);
    assert!(
        out.starts_with("fa_pack: ") && out.contains("shapes passed"),
        "{out}"
    );
}
