//! The CPU features tests depend on, and the rule that keeps a skipped test from passing
//! unnoticed: a test that would skip because this CPU lacks a feature asks [`has`], which
//! panics instead of answering `false` when `GGUF_EMBED_REQUIRE_CPU_FEATURES` names that
//! feature. CI (`.ci/run`) sets the variable to the features of its machine, read from
//! `/proc/cpuinfo` at start (or checks a list it was given against them), so in CI a test
//! skips only for a feature the machine really lacks, and the run's log says which.
//!
//! Names are those of `std::arch::is_x86_feature_detected!` (`avx512vnni`, not cpuinfo's
//! `avx512_vnni`); `.ci/run` maps between the two.
#![allow(dead_code)]

/// The variable listing the features that must be present (comma- or space-separated).
pub const REQUIRED: &str = "GGUF_EMBED_REQUIRE_CPU_FEATURES";

/// The features tests ask about (each must be known to [`detect`]).
pub const KNOWN: [&str; 9] = [
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512vnni",
    "avxvnni",
    "avx512bf16",
];

/// The features `GGUF_EMBED_REQUIRE_CPU_FEATURES` names (empty when unset). Panics on a name
/// this module does not know, so that a typo cannot switch the rule off.
pub fn required() -> Vec<String> {
    let list = std::env::var(REQUIRED).unwrap_or_default();
    let names: Vec<String> = list
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    for name in &names {
        assert!(
            KNOWN.contains(&name.as_str()),
            "{REQUIRED} names {name:?}, which the tests do not know (known: {KNOWN:?})"
        );
    }
    names
}

/// Whether this CPU has every one of `features`. A feature that is missing but required
/// (see the module's documentation) panics: the caller would have skipped a test.
pub fn has_all(features: &[&str]) -> bool {
    features.iter().all(|f| has(f))
}

/// Whether this CPU has `feature`; panics when it lacks one that is required.
pub fn has(feature: &str) -> bool {
    let present = detect(feature);
    if !present && required().iter().any(|r| r == feature) {
        panic!(
            "{REQUIRED} says this machine has {feature}, but it was not detected: the test that \
             asked would have been skipped"
        );
    }
    present
}

/// What the running CPU (and OS) supports, by `is_x86_feature_detected!`.
pub fn detect(feature: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match feature {
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            "fma" => std::arch::is_x86_feature_detected!("fma"),
            "f16c" => std::arch::is_x86_feature_detected!("f16c"),
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
            "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
            "avx512vnni" => std::arch::is_x86_feature_detected!("avx512vnni"),
            "avxvnni" => std::arch::is_x86_feature_detected!("avxvnni"),
            "avx512bf16" => std::arch::is_x86_feature_detected!("avx512bf16"),
            other => panic!("unknown CPU feature {other:?} (known: {KNOWN:?})"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        assert!(KNOWN.contains(&feature), "unknown CPU feature {feature:?}");
        false
    }
}
