//! Build script: compiles the model catalog (`models/catalog.tsv`) into the binary after
//! checking it, and records version information (git commit, llama-cpp-2 version).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=models/catalog.tsv");
    println!("cargo:rerun-if-changed=Cargo.toml");
    watch_git_head();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    let catalog = std::fs::read_to_string("models/catalog.tsv").expect("models/catalog.tsv");
    let code = catalog_code(&catalog).unwrap_or_else(|e| panic!("models/catalog.tsv: {e}"));
    std::fs::write(out.join("catalog.rs"), code).expect("write catalog.rs");

    println!("cargo:rustc-env=GGUF_EMBED_GIT={}", git_commit());
    println!(
        "cargo:rustc-env=GGUF_EMBED_LLAMA_CPP_2={}",
        llama_cpp_2_version()
    );

    if std::env::var_os("CARGO_FEATURE_PORTABLE").is_some() {
        portable_layout(&out);
    }
}

/// Portable builds link llama.cpp dynamically and load ggml's backends as modules: put the
/// shared libraries and modules next to the binaries (and the test binaries in `deps/`), and
/// make the binaries look there first (rpath `$ORIGIN`), so `target/release/gguf-embed` runs as
/// built and its folder can be shipped as it is.
fn portable_layout(out: &std::path::Path) {
    println!("cargo:rerun-if-env-changed=DEP_LLAMA_BACKENDS_DIR");
    let origin = if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        "@loader_path"
    } else {
        "$ORIGIN"
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{origin}");
    let Some(backends) = std::env::var_os("DEP_LLAMA_BACKENDS_DIR").map(PathBuf::from) else {
        println!("cargo:warning=llama-cpp-sys-2 did not report its backends directory");
        return;
    };
    // OUT_DIR is target/<profile>/build/<crate>-<hash>/out.
    let profile_dir = out
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is inside the target directory");
    let libs = backends
        .parent()
        .expect("backends has a parent")
        .join("lib");
    for dest in [profile_dir.to_path_buf(), profile_dir.join("deps")] {
        for dir in [&libs, &backends] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let text = name.to_string_lossy();
                if !(text.contains(".so") || text.ends_with(".dylib") || text.ends_with(".dll")) {
                    continue;
                }
                // Copy what a symlink points to under the link's own name (libllama.so.0).
                let target = dest.join(&name);
                let _ = std::fs::create_dir_all(&dest);
                let _ = std::fs::remove_file(&target);
                if let Err(e) = std::fs::copy(entry.path(), &target) {
                    println!("cargo:warning=cannot copy {}: {e}", entry.path().display());
                }
            }
        }
    }
}

/// Turns the catalog table into a Rust array of `CatalogEntry`, rejecting malformed rows.
fn catalog_code(table: &str) -> Result<String, String> {
    let mut code = String::from("&[\n");
    let mut seen = std::collections::HashSet::new();
    for (n, line) in table.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [kind, size, quant, dims, repo, file, bytes, sha256] = cols[..] else {
            return Err(format!("line {line_no}: expected 8 tab-separated columns"));
        };
        let kind = match kind {
            "embedding" => "Embedding",
            "reranker" => "Reranker",
            _ => {
                return Err(format!(
                    "line {line_no}: kind must be embedding or reranker"
                ));
            }
        };
        if !seen.insert((kind, size, quant)) {
            return Err(format!(
                "line {line_no}: {kind} {size} {quant} listed twice"
            ));
        }
        let dims: u32 = dims
            .parse()
            .map_err(|_| format!("line {line_no}: bad dimensions"))?;
        if repo.split('/').count() != 2 || !file.ends_with(".gguf") {
            return Err(format!("line {line_no}: bad repository or file name"));
        }
        let bytes = match bytes {
            "-" => "None".to_string(),
            b => format!(
                "Some({})",
                b.parse::<u64>()
                    .map_err(|_| format!("line {line_no}: bad size"))?
            ),
        };
        let sha256 = match sha256 {
            "-" => "None".to_string(),
            h if h.len() == 64
                && h.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) =>
            {
                format!("Some({h:?})")
            }
            _ => {
                return Err(format!(
                    "line {line_no}: sha256 must be 64 lowercase hex digits"
                ));
            }
        };
        writeln!(
            code,
            "    CatalogEntry {{ kind: ModelKind::{kind}, size: {size:?}, quant: {quant:?}, \
             dimensions: {dims}, repo: {repo:?}, file: {file:?}, bytes: {bytes}, \
             sha256: {sha256} }},"
        )
        .expect("write to String");
    }
    code.push(']');
    Ok(code)
}

/// Asks cargo to run this script again when the commit changes: when HEAD moves to another
/// branch, and when the checked-out branch gains a commit (its ref file, or `packed-refs`).
/// Paths come from git itself, so this also holds in a worktree, whose `.git` is a file.
fn watch_git_head() {
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        // A path that does not exist would make cargo run the script at every build.
        if let Some(path) =
            git(&["rev-parse", "--git-path", &name]).filter(|p| std::path::Path::new(p).exists())
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

fn git_commit() -> String {
    git(&["rev-parse", "--short=9", "HEAD"]).unwrap_or_else(|| "unknown commit".into())
}

/// What a git command prints, trimmed; `None` outside a repository or without git.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The exact llama-cpp-2 version pinned in Cargo.toml.
fn llama_cpp_2_version() -> String {
    let manifest = std::fs::read_to_string("Cargo.toml").expect("Cargo.toml");
    manifest
        .lines()
        .find(|l| l.starts_with("llama-cpp-2 "))
        .and_then(|l| l.split("version = \"=").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("unknown")
        .to_string()
}
