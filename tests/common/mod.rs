//! Helpers shared by the integration tests: fixture paths and the reference vectors.
#![allow(dead_code)]

pub mod cpu;
pub mod f16_writer;
pub mod mock_hub;
pub mod python;
pub mod quant_fixtures;
pub mod repos;
pub mod rerankers;
pub mod server;
pub mod vectors;
pub mod workspace;

use std::path::PathBuf;
use std::sync::OnceLock;

use gguf_embed::{Instruction, Task};
use serde_json::Value;

// Not every test binary uses every helper.
#[allow(unused_imports)]
pub use workspace::{f32_model, floats, models_dir, q8_model};

/// One reference case computed by Hugging Face transformers / tokenizers.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub text: String,
    pub task: Option<String>,
    pub prompt: String,
    pub nfc_prompt: String,
    pub token_ids: Vec<u32>,
    /// transformers' vector with the float32 weights.
    pub embedding: Vec<f32>,
    /// transformers' vector with the weights as the Q8_0 file stores them (dequantized).
    pub embedding_q8_0: Vec<f32>,
    /// transformers' vector with the matrices rounded to bfloat16 (what an F16 file of a
    /// bfloat16 checkpoint holds).
    pub embedding_bf16: Vec<f32>,
}

impl Case {
    /// The instruction this case was embedded with.
    pub fn instruction(&self) -> Instruction {
        match &self.task {
            None => Instruction::None,
            Some(text) => Task::ALL
                .into_iter()
                .find(|t| t.instruction() == text)
                .map(Instruction::Task)
                .unwrap_or_else(|| Instruction::Custom(text.clone())),
        }
    }
}

/// The reference cases of `models/reference.json`.
pub fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let text = std::fs::read_to_string(models_dir().join("reference.json")).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| Case {
                name: c["name"].as_str().unwrap().into(),
                text: c["text"].as_str().unwrap().into(),
                task: c["task"].as_str().map(str::to_string),
                prompt: c["prompt"].as_str().unwrap().into(),
                nfc_prompt: c["nfc_prompt"].as_str().unwrap().into(),
                token_ids: c["token_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect(),
                embedding: floats(&c["embedding"]),
                embedding_q8_0: floats(&c["embedding_q8_0"]),
                embedding_bf16: floats(&c["embedding_bf16"]),
            })
            .collect()
    })
}

/// The `<|endoftext|>` id the reference used (`eot_id` in models/reference.json).
pub fn eot_id() -> u32 {
    let text = std::fs::read_to_string(models_dir().join("reference.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["eot_id"].as_u64().unwrap() as u32
}

/// One case by name.
pub fn case(name: &str) -> &'static Case {
    cases().iter().find(|c| c.name == name).unwrap()
}

/// The device the reference tests run on: `GGUF_EMBED_TEST_DEVICE` (`cpu` by default; `gpu`
/// for the opt-in GPU runs, e.g. on the Vulkan build with Mesa's lavapipe).
pub fn test_device() -> gguf_embed::Device {
    std::env::var("GGUF_EMBED_TEST_DEVICE")
        .map(|d| {
            d.parse()
                .expect("GGUF_EMBED_TEST_DEVICE: auto, cpu, gpu or gpu:N")
        })
        .unwrap_or(gguf_embed::Device::Cpu)
}

/// What computes the reference tests' vectors, for tolerances measured per backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// The CPU (the default).
    Cpu,
    /// A Vulkan device (measured on Mesa's lavapipe).
    Vulkan,
    /// Another GPU backend (CUDA, Metal, ...).
    OtherGpu,
}

/// The backend of [`test_device`]: the CPU, or the backend of the first GPU.
pub fn test_backend() -> TestBackend {
    if test_device() == gguf_embed::Device::Cpu {
        return TestBackend::Cpu;
    }
    let gpu = gguf_embed::devices().into_iter().find(|d| d.is_gpu());
    match gpu.map(|d| d.backend) {
        Some(b) if b.eq_ignore_ascii_case("vulkan") => TestBackend::Vulkan,
        Some(_) => TestBackend::OtherGpu,
        None => TestBackend::Cpu,
    }
}

/// The path of the built CLI (built with the `cli` feature, a default one; the test targets
/// that run it require that feature in Cargo.toml).
pub fn cli() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_gguf-embed") {
        Some(path) => PathBuf::from(path),
        None => panic!("the CLI is built only with the `cli` feature (on by default)"),
    }
}

/// Runs the CLI offline (no Hub, no model from the environment) and waits for it.
pub fn run_offline(args: &[&str]) -> std::process::Output {
    std::process::Command::new(cli())
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("GGUF_EMBED_MODEL")
        .output()
        .unwrap()
}

/// The JSON a successful CLI run printed; panics with its stderr if it failed.
pub fn json_output(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
