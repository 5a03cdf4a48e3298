//! The reranker fixtures (models/make_reranker_fixtures.py): their paths, their F32 copies
//! (written here from the Q8_0 files, whose weights the fixtures chose to be exactly
//! representable), and the reference scores.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gguf_embed::gguf::{GgufFile, dequant};
use gguf_embed::{Instruction, RerankOptions};
use serde_json::Value;

use super::models_dir;

/// llama.cpp's converter layout: `cls.output.weight`, pooling RANK, labels, template.
pub fn reranker_q8() -> PathBuf {
    models_dir().join("tiny-qwen3-reranker-q8_0.gguf")
}

/// The same weights without head or reranker metadata.
pub fn headless_q8() -> PathBuf {
    models_dir().join("tiny-qwen3-reranker-headless-q8_0.gguf")
}

/// F32 copies of the Q8_0 fixtures, written once per test binary.
pub fn reranker_f32() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| f32_copy(&reranker_q8())).clone()
}

/// The head-less file as F32.
pub fn headless_f32() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| f32_copy(&headless_q8())).clone()
}

fn f32_copy(src: &Path) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reranker-fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    let name = src
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .replace("q8_0", "f32");
    // Per process: test binaries run at the same time and must not read a half-written file.
    let dst = dir.join(format!("{}-{name}", std::process::id()));
    write_f32_copy(src, &dst);
    dst
}

/// Writes `src` to `dst` with every Q8_0 tensor dequantised to F32, and `general.file_type`
/// set to ALL_F32.
pub fn write_f32_copy(src: &Path, dst: &Path) {
    let file = GgufFile::open(src).unwrap();
    let bytes = std::fs::read(src).unwrap();
    let alignment = file.alignment();
    let mut out = Vec::new();
    out.extend_from_slice(&bytes[..file.tensor_table_offset() as usize]);
    set_file_type(&mut out, 0);
    let mut data = Vec::new();
    for t in file.tensors() {
        let raw = file.tensor_data(&t.name).unwrap();
        data.resize(data.len().next_multiple_of(alignment as usize), 0u8);
        let offset = data.len() as u64;
        let tag = match t.tensor_type.name {
            "f32" => {
                data.extend_from_slice(raw);
                0u32
            }
            "q8_0" => {
                let values = dequant::dequantize_row(t.tensor_type, raw).unwrap();
                data.extend(values.iter().flat_map(|x| x.to_le_bytes()));
                0
            }
            other => panic!("{}: unexpected type {other}", t.name),
        };
        out.extend_from_slice(&(t.name.len() as u64).to_le_bytes());
        out.extend_from_slice(t.name.as_bytes());
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
    }
    out.resize(out.len().next_multiple_of(alignment as usize), 0);
    out.extend_from_slice(&data);
    let partial = dst.with_extension("partial");
    std::fs::File::create(&partial)
        .unwrap()
        .write_all(&out)
        .unwrap();
    std::fs::rename(partial, dst).unwrap();
}

/// Sets the u32 value of `general.file_type` in the metadata bytes.
fn set_file_type(metadata: &mut [u8], file_type: u32) {
    let key = b"general.file_type";
    let at = metadata
        .windows(key.len())
        .position(|w| w == key)
        .expect("the fixture has general.file_type");
    let value = at + key.len() + 4;
    metadata[value..value + 4].copy_from_slice(&file_type.to_le_bytes());
}

/// One pair of the reference.
#[derive(Debug, Clone)]
pub struct Pair {
    pub name: String,
    pub query: String,
    pub document: String,
    /// `None`: the default instruction.
    pub instruction: Option<String>,
    pub token_ids: Vec<u32>,
    pub log_odds: f64,
    pub score: f64,
    /// For the truncated cases: the limit they were cut to.
    pub max_tokens: Option<usize>,
}

impl Pair {
    /// The options the reference used.
    pub fn options(&self) -> RerankOptions {
        let mut options = RerankOptions::default().with_instruction(match &self.instruction {
            Some(text) => Instruction::Custom(text.clone()),
            None => Instruction::None,
        });
        if let Some(max) = self.max_tokens {
            options = options.with_max_tokens(max);
        }
        options
    }
}

fn reference() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let text = std::fs::read_to_string(models_dir().join("reranker-reference.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn pair(c: &Value, base: Option<&Value>) -> Pair {
    let from = base.unwrap_or(c);
    Pair {
        name: c["name"].as_str().unwrap().into(),
        query: from["query"].as_str().unwrap().into(),
        document: from["document"].as_str().unwrap().into(),
        instruction: from["instruction"].as_str().map(str::to_string),
        token_ids: c["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect(),
        log_odds: c["log_odds"].as_f64().unwrap(),
        score: c["score"].as_f64().unwrap(),
        max_tokens: c["max_tokens"].as_u64().map(|m| m as usize),
    }
}

/// The reference pairs, whole.
pub fn pairs() -> Vec<Pair> {
    reference()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| pair(c, None))
        .collect()
}

/// The reference pairs cut to a token limit.
pub fn truncated_pairs() -> Vec<Pair> {
    let cases = reference()["cases"].as_array().unwrap();
    reference()["truncated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let base = cases.iter().find(|c| c["name"] == t["name"]).unwrap();
            pair(t, Some(base))
        })
        .collect()
}

/// The ids of "yes" and "no" in the vocabulary.
pub fn yes_no_ids() -> (u32, u32) {
    let doc = reference();
    (
        doc["yes_id"].as_u64().unwrap() as u32,
        doc["no_id"].as_u64().unwrap() as u32,
    )
}
