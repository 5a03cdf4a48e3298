//! `gguf-embed models ...`: the model cache from the command line.

use anyhow::{Result, bail};
use gguf_embed::hub::copies::{CopyOutcome, verify_copies};
use gguf_embed::hub::{CachedFile, HubConfig, HubFile, ModelSpec, catalog, human_bytes};
use serde_json::json;

use super::args::{GlobalArgs, InfoFormat, ModelsCommand, ModelsSpecArgs};
use super::model;

/// Runs a `models` subcommand.
pub fn run(command: ModelsCommand, global: &GlobalArgs) -> Result<()> {
    match command {
        ModelsCommand::List { format, .. } => list(format, global),
        ModelsCommand::Pull(args) => pull(&args, global),
        ModelsCommand::Path(args) => path(&args, global),
        ModelsCommand::Verify {
            spec,
            quant,
            format,
        } => verify(spec.as_deref(), &quant, format, global),
        ModelsCommand::Rm(args) => remove(&args, global),
    }
}

/// The Hub file a `models` command names (local paths have no cache entry).
fn hub_file(args: &ModelsSpecArgs) -> Result<HubFile> {
    let o = &args.official;
    match model::spec(args.spec.as_deref(), &o.size, &o.quant)? {
        ModelSpec::Hub(file) => Ok(file),
        ModelSpec::Local(path) => bail!(
            "{} is a local file, not a model in the cache",
            path.display()
        ),
    }
}

fn list(format: InfoFormat, global: &GlobalArgs) -> Result<()> {
    let hub = model::hub(true, global);
    let cached = hub.list_cached();
    let cache_dir = HubConfig::from_env().cache_dir;
    let entry_of = |repo: &str, file: &str| -> Option<&CachedFile> {
        cached.iter().find(|c| c.repo == repo && c.file == file)
    };
    match format {
        InfoFormat::Json => {
            let official: Vec<_> = catalog()
                .iter()
                .map(|e| {
                    let c = entry_of(e.repo, e.file);
                    json!({
                        "kind": e.kind.name(), "size": e.size, "quant": e.quant, "dimensions": e.dimensions,
                        "repo": e.repo, "file": e.file, "bytes": e.bytes, "sha256": e.sha256,
                        "spec": format!("hf:{}/{}", e.repo, e.file),
                        "cached": c.is_some(), "path": c.map(|c| &c.path),
                        "verified": c.is_some_and(|c| c.verified),
                    })
                })
                .collect();
            let doc = json!({"cache_dir": cache_dir, "catalog": official, "cached": cached});
            outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        }
        InfoFormat::Text => {
            let mut rows = vec![vec![
                "KIND".into(),
                "SIZE".into(),
                "QUANT".into(),
                "DIMS".into(),
                "BYTES".into(),
                "CACHED".into(),
                "FILE".into(),
            ]];
            for e in catalog() {
                let state = match entry_of(e.repo, e.file) {
                    Some(c) if c.verified => "verified".to_string(),
                    Some(_) => "yes".to_string(),
                    None => "-".to_string(),
                };
                rows.push(vec![
                    e.kind.name().into(),
                    e.size.into(),
                    e.quant.into(),
                    e.dimensions.to_string(),
                    e.bytes.map_or_else(|| "?".into(), human_bytes),
                    state,
                    format!("{}/{}", e.repo, e.file),
                ]);
            }
            outln!(
                "Known models (default: the 0.6B Q8_0 embedding model; `gguf-embed rerank`: the \
                 reranker):"
            )?;
            out!("{}", table(&rows))?;
            outln!("\nGGUF files in the cache at {}:", cache_dir.display())?;
            if cached.is_empty() {
                outln!("  (none)")?;
            } else {
                let mut rows = vec![vec![
                    "BYTES".into(),
                    "VERIFIED".into(),
                    "MODEL".into(),
                    "PATH".into(),
                ]];
                for c in &cached {
                    rows.push(vec![
                        human_bytes(c.size),
                        if c.verified { "yes" } else { "no" }.into(),
                        format!(
                            "hf:{}/{}@{}",
                            c.repo,
                            c.file,
                            &c.commit[..c.commit.len().min(12)]
                        ),
                        c.path.display().to_string(),
                    ]);
                }
                out!("{}", table(&rows))?;
            }
        }
    }
    Ok(())
}

/// Aligns columns with two spaces between them.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str("  ");
        out.push_str(&cells.join("  "));
        out.push('\n');
    }
    out
}

fn pull(args: &ModelsSpecArgs, global: &GlobalArgs) -> Result<()> {
    let file = hub_file(args)?;
    let hub = model::hub(args.official.offline, global);
    let path = hub.pull(&file)?;
    print_path(&file, &path, args.format)
}

fn path(args: &ModelsSpecArgs, global: &GlobalArgs) -> Result<()> {
    let file = hub_file(args)?;
    let hub = model::hub(true, global);
    match hub.cached(&file) {
        Some(path) => print_path(&file, &path, args.format),
        None => {
            bail!("{file} is not in the cache; download it with `gguf-embed models pull {file}`")
        }
    }
}

fn print_path(file: &HubFile, path: &std::path::Path, format: InfoFormat) -> Result<()> {
    match format {
        InfoFormat::Text => outln!("{}", path.display())?,
        InfoFormat::Json => outln!(
            "{}",
            json!({"spec": file.to_string(), "path": path, "bytes": std::fs::metadata(path)?.len()})
        )?,
    }
    Ok(())
}

fn verify(spec: Option<&str>, quant: &str, format: InfoFormat, global: &GlobalArgs) -> Result<()> {
    let hub = model::hub(true, global);
    // The Hub files to re-hash, and the model files whose copies to check (`None`: every copy).
    let (targets, copy_sources) = match spec {
        None => (hub.list_cached(), None),
        Some(spec) => match ModelSpec::parse(spec, quant)? {
            ModelSpec::Hub(file) => {
                let cached = hub.find_cached(&file);
                let sources = cached.iter().map(|c| c.path.clone()).collect();
                (cached, Some(sources))
            }
            ModelSpec::Local(path) => {
                if !path.is_file() {
                    bail!("{} is not a file", path.display());
                }
                (Vec::new(), Some(vec![path]))
            }
        },
    };
    let mut results = Vec::new();
    for cached in &targets {
        results.push(hub.verify(cached)?);
    }
    let copies = verify_copies(copy_sources.as_deref());
    if targets.is_empty() && copies.is_empty() {
        bail!("nothing to verify: no such model (or copy of one) in the cache");
    }
    match format {
        InfoFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"files": results, "copies": copies}))?
        )?,
        InfoFormat::Text => {
            for r in &results {
                let what = format!("hf:{}/{}", r.file.repo, r.file.file);
                match (&r.expected, r.ok) {
                    (_, true) => outln!("ok        {what}  sha256 {}", r.actual)?,
                    (Some(expected), false) => outln!(
                        "MISMATCH  {what}  expected sha256 {expected}, found {}",
                        r.actual
                    )?,
                    (None, false) => outln!(
                        "unknown   {what}  sha256 {} (nothing to compare with)",
                        r.actual
                    )?,
                }
            }
            for c in &copies {
                let what = format!("{} copy {}", c.kind, c.path.display());
                match &c.outcome {
                    CopyOutcome::Ok => outln!("ok        {what}")?,
                    CopyOutcome::Rebuilt { reason } => outln!("REBUILT   {what}  ({reason})")?,
                    CopyOutcome::Removed { reason } => outln!("REMOVED   {what}  ({reason})")?,
                }
            }
        }
    }
    let repaired = copies.iter().filter(|c| c.outcome.was_damaged()).count();
    if repaired > 0 {
        tracing::warn!(
            "{repaired} damaged model cop{} rebuilt or removed (a removed copy is written again \
             when its model is next loaded)",
            if repaired == 1 { "y was" } else { "ies were" }
        );
    }
    let bad = results
        .iter()
        .filter(|r| r.expected.is_some() && !r.ok)
        .count();
    if bad > 0 {
        bail!(
            "{bad} cached file(s) failed verification; remove them with `gguf-embed models rm` and pull again"
        );
    }
    Ok(())
}

fn remove(args: &ModelsSpecArgs, global: &GlobalArgs) -> Result<()> {
    let file = hub_file(args)?;
    let hub = model::hub(true, global);
    let (removed, freed) = hub.remove(&file)?;
    if removed.is_empty() {
        bail!("{file} is not in the cache");
    }
    match args.format {
        InfoFormat::Json => outln!(
            "{}",
            json!({"removed": removed.iter().map(|r| &r.path).collect::<Vec<_>>(), "freed_bytes": freed})
        )?,
        InfoFormat::Text => outln!(
            "removed {} ({} entr{}, {} freed)",
            file,
            removed.len(),
            if removed.len() == 1 { "y" } else { "ies" },
            human_bytes(freed)
        )?,
    }
    Ok(())
}
