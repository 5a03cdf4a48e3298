//! `gguf-embed inspect FILE`: what our GGUF reader knows about a model file.

use anyhow::Result;
use gguf_embed::ModelInfo;

use super::args::{InfoFormat, InspectArgs};

/// Validates the file and prints its summary.
pub fn run(args: &InspectArgs) -> Result<()> {
    let info = gguf_embed::inspect(&args.file)?;
    match args.format {
        InfoFormat::Json => outln!("{}", serde_json::to_string_pretty(&info)?)?,
        InfoFormat::Text => out!("{}", render(&info))?,
    }
    Ok(())
}

fn render(info: &ModelInfo) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let flag = |v: Option<bool>| v.map_or_else(|| "-".into(), |b| b.to_string());
    let rows: Vec<(&str, String)> = vec![
        ("file", info.path.display().to_string()),
        ("size", format!("{} bytes", info.file_size)),
        ("gguf version", info.gguf_version.to_string()),
        ("name", opt(&info.name)),
        ("architecture", info.architecture.clone()),
        ("file type", opt(&info.file_type)),
        ("parameters", info.parameters.to_string()),
        ("tensors", info.tensor_count.to_string()),
        ("dimensions", info.embedding_length.to_string()),
        ("layers", info.block_count.to_string()),
        (
            "heads (kv)",
            format!("{} ({})", info.head_count, info.head_count_kv),
        ),
        ("feed-forward", info.feed_forward_length.to_string()),
        ("context", format!("{} tokens", info.context_length)),
        (
            "pooling (file)",
            format!(
                "{} (gguf-embed always pools the last token)",
                opt(&info.pooling)
            ),
        ),
        (
            "tokenizer",
            format!("{} / {}", info.tokenizer_model, opt(&info.tokenizer_pre)),
        ),
        ("vocabulary", format!("{} tokens", info.vocab_size)),
        ("add_bos_token", flag(info.add_bos_token)),
        (
            "add_eos_token",
            format!(
                "{} (gguf-embed appends <|endoftext|> itself)",
                flag(info.add_eos_token)
            ),
        ),
        ("<|endoftext|>", format!("token {}", info.end_of_text_id)),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}
