//! Model specs: what `--model` accepts, parsed and checked so nothing can escape the cache.

use std::fmt;
use std::path::{Path, PathBuf};

use super::HubError;
use super::catalog::{self, CatalogEntry};
use crate::gguf::ModelKind;

/// The default revision of a repository.
pub const DEFAULT_REVISION: &str = "main";

/// A model to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A file on disk.
    Local(PathBuf),
    /// A file in a Hugging Face repository.
    Hub(HubFile),
}

/// A file in a Hugging Face model repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFile {
    /// `owner/name`.
    pub repo: String,
    /// The path of the file in the repository.
    pub file: String,
    /// A branch, tag or commit.
    pub revision: String,
    /// The catalog entry, for official files (it pins their size and hash).
    pub entry: Option<&'static CatalogEntry>,
}

impl HubFile {
    /// The official file for a size and quantization.
    pub fn official(entry: &'static CatalogEntry) -> Self {
        Self {
            repo: entry.repo.to_string(),
            file: entry.file.to_string(),
            revision: DEFAULT_REVISION.to_string(),
            entry: Some(entry),
        }
    }

    /// The sha256 the catalog pins for this file, if any.
    pub fn pinned_sha256(&self) -> Option<&'static str> {
        self.entry.and_then(|e| e.sha256)
    }
}

impl fmt::Display for HubFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hf:{}/{}", self.repo, self.file)?;
        if self.revision != DEFAULT_REVISION {
            write!(f, "@{}", self.revision)?;
        }
        Ok(())
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSpec::Local(path) => write!(f, "{}", path.display()),
            ModelSpec::Hub(file) => file.fmt(f),
        }
    }
}

impl ModelSpec {
    /// The official file of a size (`0.6B`, `4B`, `8B`) and quantization.
    pub fn official(size: &str, quant: &str) -> Result<Self, HubError> {
        Self::official_of(ModelKind::Embedding, size, quant)
    }

    /// The catalog's file of `kind` (an embedding model or a reranker), size and
    /// quantization.
    pub fn official_of(kind: ModelKind, size: &str, quant: &str) -> Result<Self, HubError> {
        let entry = catalog::find_of(kind, size, quant)
            .ok_or_else(|| unknown_official(kind, size, quant))?;
        Ok(ModelSpec::Hub(HubFile::official(entry)))
    }

    /// Parses a spec:
    ///
    /// - `hf:OWNER/REPO/FILE.gguf[@REVISION]`: any GGUF file on the Hub;
    /// - a path to an existing file;
    /// - a catalog name: `Qwen/Qwen3-Embedding-0.6B` (or `-GGUF`), `Qwen3-Embedding-4B`,
    ///   optionally with a quantization: `Qwen3-Embedding-4B-Q4_K_M`,
    ///   `qwen3-embedding-0.6b:f16`, or the official file name itself. Without one,
    ///   `default_quant` is used. The catalog's reranker goes by `Qwen3-Reranker-0.6B`, its
    ///   repository `ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF` or its file name.
    pub fn parse(spec: &str, default_quant: &str) -> Result<Self, HubError> {
        let spec = spec.trim();
        if let Some(rest) = spec.strip_prefix("hf:") {
            return parse_hub(rest).map(ModelSpec::Hub);
        }
        if Path::new(spec).is_file() {
            return Ok(ModelSpec::Local(PathBuf::from(spec)));
        }
        if let Some(entry) = parse_catalog_name(spec, default_quant)? {
            return Ok(ModelSpec::Hub(HubFile::official(entry)));
        }
        if spec.contains(['/', '\\']) || spec.to_ascii_lowercase().ends_with(".gguf") {
            return Err(HubError::InvalidSpec(format!(
                "{spec}: no such file (for a file on the Hugging Face Hub write \
                 hf:OWNER/REPO/FILE.gguf)"
            )));
        }
        Err(HubError::InvalidSpec(format!(
            "unknown model {spec:?}: give a .gguf path, hf:OWNER/REPO/FILE.gguf, or a catalog \
             name such as Qwen/Qwen3-Embedding-0.6B (see `gguf-embed models list`)"
        )))
    }
}

/// The catalog's name of a kind of model, as in `Qwen3-Embedding-0.6B`.
fn family(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Reranker => "Qwen3-Reranker",
        _ => "Qwen3-Embedding",
    }
}

fn unknown_official(kind: ModelKind, size: &str, quant: &str) -> HubError {
    let quants = catalog::quants_of_kind(kind, size);
    if quants.is_empty() {
        HubError::InvalidSpec(format!(
            "unknown {} size {size:?}; sizes: {}",
            family(kind),
            catalog::sizes_of(kind).join(", ")
        ))
    } else {
        HubError::InvalidSpec(format!(
            "{}-{size} has no {quant} file in the catalog; available: {}",
            family(kind),
            quants.join(", ")
        ))
    }
}

/// Recognises the catalog's spellings of a model.
fn parse_catalog_name(
    spec: &str,
    default_quant: &str,
) -> Result<Option<&'static CatalogEntry>, HubError> {
    let lower = spec.to_ascii_lowercase();
    let name = ["qwen/", "ggml-org/"]
        .iter()
        .find_map(|owner| lower.strip_prefix(owner))
        .unwrap_or(&lower);
    let name = name.strip_suffix(".gguf").unwrap_or(name);
    let Some((kind, rest)) = [ModelKind::Embedding, ModelKind::Reranker]
        .into_iter()
        .find_map(|kind| {
            let prefix = format!("{}-", family(kind).to_ascii_lowercase());
            name.strip_prefix(&prefix).map(|rest| (kind, rest))
        })
    else {
        return Ok(None);
    };
    let rest = rest.strip_suffix("-gguf").unwrap_or(rest);
    for size in catalog::sizes_of(kind) {
        let size_lower = size.to_ascii_lowercase();
        let Some(tail) = rest.strip_prefix(&size_lower) else {
            continue;
        };
        let quant = match tail {
            "" => default_quant.to_string(),
            t if t.starts_with('-') || t.starts_with(':') => t[1..].to_string(),
            _ => continue,
        };
        return catalog::find_of(kind, size, &quant)
            .map(Some)
            .ok_or_else(|| unknown_official(kind, size, &quant));
    }
    Ok(None)
}

/// Parses `OWNER/REPO/PATH/IN/REPO.gguf[@REVISION]`, rejecting anything that could name a
/// path outside the cache or that the Hub would not accept.
fn parse_hub(rest: &str) -> Result<HubFile, HubError> {
    let invalid = |why: &str| HubError::InvalidSpec(format!("hf:{rest}: {why}"));
    let (path, revision) = match rest.split_once('@') {
        Some((path, revision)) => (path, revision),
        None => (rest, DEFAULT_REVISION),
    };
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() < 3 {
        return Err(invalid("expected hf:OWNER/REPO/FILE.gguf"));
    }
    for part in &parts {
        check_component(part).map_err(|why| invalid(&why))?;
    }
    if !parts[parts.len() - 1]
        .to_ascii_lowercase()
        .ends_with(".gguf")
    {
        return Err(invalid("the file must be a .gguf file"));
    }
    check_revision(revision).map_err(|why| invalid(&why))?;
    let repo = format!("{}/{}", parts[0], parts[1]);
    let file = parts[2..].join("/");
    // An hf: spec of an official file still gets the catalog's pins.
    let entry = catalog::catalog()
        .iter()
        .find(|e| e.repo == repo && e.file == file);
    Ok(HubFile {
        repo,
        file,
        revision: revision.to_string(),
        entry,
    })
}

/// One path component: non-empty, not `.` or `..`, and only characters the Hub allows in
/// repository and file names.
fn check_component(part: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err("empty path component".into());
    }
    if part == "." || part == ".." {
        return Err(format!("{part:?} is not allowed in a model spec"));
    }
    if let Some(c) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "the character {c:?} is not allowed in a model spec"
        ));
    }
    Ok(())
}

/// A revision: a branch, tag or commit; `/` is allowed (branches like `refs/pr/1`) but no
/// empty, `.` or `..` component.
fn check_revision(revision: &str) -> Result<(), String> {
    if revision.is_empty() {
        return Err("empty revision after @".into());
    }
    revision.split('/').try_for_each(check_component)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(spec: &str) -> HubFile {
        match ModelSpec::parse(spec, "Q8_0").unwrap() {
            ModelSpec::Hub(f) => f,
            other => panic!("{spec} parsed as {other:?}"),
        }
    }

    #[test]
    fn catalog_names_resolve_to_official_files() {
        for spec in [
            "Qwen/Qwen3-Embedding-0.6B",
            "Qwen/Qwen3-Embedding-0.6B-GGUF",
            "qwen3-embedding-0.6b",
            "Qwen3-Embedding-0.6B-Q8_0",
            "Qwen3-Embedding-0.6B-Q8_0.gguf",
            "qwen3-embedding-0.6b:q8_0",
        ] {
            let f = hub(spec);
            assert_eq!(f.file, "Qwen3-Embedding-0.6B-Q8_0.gguf", "{spec}");
            assert!(f.pinned_sha256().is_some());
        }
        assert_eq!(
            hub("Qwen3-Embedding-0.6B-f16.gguf").file,
            "Qwen3-Embedding-0.6B-f16.gguf"
        );
        assert_eq!(
            hub("qwen3-embedding-4b:q4_k_m").file,
            "Qwen3-Embedding-4B-Q4_K_M.gguf"
        );
        let f = match ModelSpec::parse("Qwen/Qwen3-Embedding-8B", "Q6_K").unwrap() {
            ModelSpec::Hub(f) => f,
            _ => unreachable!(),
        };
        assert_eq!(f.file, "Qwen3-Embedding-8B-Q6_K.gguf");
    }

    #[test]
    fn the_reranker_goes_by_its_names() {
        for spec in [
            "Qwen3-Reranker-0.6B",
            "qwen/qwen3-reranker-0.6b",
            "ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF",
            "qwen3-reranker-0.6b-q8_0.gguf",
            "Qwen3-Reranker-0.6B:Q8_0",
        ] {
            let f = hub(spec);
            assert_eq!(f.repo, "ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF", "{spec}");
            assert_eq!(f.entry.unwrap().kind, ModelKind::Reranker);
        }
        let err = ModelSpec::parse("Qwen3-Reranker-0.6B-F16", "Q8_0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Qwen3-Reranker-0.6B has no f16 file"), "{err}");
        assert!(err.contains("available: Q8_0"), "{err}");
        let err = ModelSpec::official_of(ModelKind::Reranker, "4B", "Q8_0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown Qwen3-Reranker size"), "{err}");
        assert!(matches!(
            ModelSpec::official_of(ModelKind::Reranker, "0.6B", "Q8_0").unwrap(),
            ModelSpec::Hub(f) if f.file == "qwen3-reranker-0.6b-q8_0.gguf"
        ));
    }

    #[test]
    fn official_files_by_size_and_quant() {
        let ModelSpec::Hub(f) = ModelSpec::official("4B", "Q4_K_M").unwrap() else {
            unreachable!()
        };
        assert_eq!(f.repo, "Qwen/Qwen3-Embedding-4B-GGUF");
        let err = ModelSpec::official("0.6B", "Q4_K_M")
            .unwrap_err()
            .to_string();
        assert!(err.contains("available: Q8_0, F16"), "{err}");
        let err = ModelSpec::official("2B", "Q8_0").unwrap_err().to_string();
        assert!(err.contains("sizes: 0.6B, 4B, 8B"), "{err}");
    }

    #[test]
    fn hub_specs_parse_with_revisions() {
        let f = hub("hf:someone/some-model-GGUF/sub/dir/model.Q4_K_M.gguf@v1.2");
        assert_eq!(f.repo, "someone/some-model-GGUF");
        assert_eq!(f.file, "sub/dir/model.Q4_K_M.gguf");
        assert_eq!(f.revision, "v1.2");
        assert!(f.entry.is_none());
        assert_eq!(
            f.to_string(),
            "hf:someone/some-model-GGUF/sub/dir/model.Q4_K_M.gguf@v1.2"
        );
        let official = hub("hf:Qwen/Qwen3-Embedding-0.6B-GGUF/Qwen3-Embedding-0.6B-Q8_0.gguf");
        assert!(official.entry.is_some(), "official files keep their pins");
        assert_eq!(hub("hf:a/b/c.gguf@refs/pr/3").revision, "refs/pr/3");
    }

    #[test]
    fn specs_that_could_escape_the_cache_are_rejected() {
        for spec in [
            "hf:../b/c.gguf",
            "hf:a/../c.gguf",
            "hf:a/b/../../../etc/passwd.gguf",
            "hf:/abs/b/c.gguf",
            "hf:a//c.gguf",
            "hf:a/b/c.gguf@../main",
            "hf:a/b/c.gguf@",
            "hf:a/b/c d.gguf",
            "hf:a/b/c\\d.gguf",
            "hf:a/b/c%2e.gguf",
            "hf:a/b/file.bin",
            "hf:a/b",
            "hf:a/b/c.gguf@x\ny",
        ] {
            let err = ModelSpec::parse(spec, "Q8_0").unwrap_err();
            assert!(matches!(err, HubError::InvalidSpec(_)), "{spec}: {err}");
        }
    }

    #[test]
    fn paths_and_unknown_names() {
        let err = ModelSpec::parse("./missing.gguf", "Q8_0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such file"), "{err}");
        let err = ModelSpec::parse("bert-base", "Q8_0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown model"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.gguf");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(
            ModelSpec::parse(file.to_str().unwrap(), "Q8_0").unwrap(),
            ModelSpec::Local(file)
        );
    }
}
