//! Builds the npm package from source as its README says (`npm install`, then `npm run build`:
//! the registry's @napi-rs/cli runs cargo on this workspace with the profile and target folder
//! of the enclosing `cargo test --release`, so llama.cpp is not compiled again), checks the
//! TypeScript types it generates from the Rust with `tsc --strict`, and runs the `node --test`
//! files in this folder against it: in this machine's Node, and in a second major version from
//! the npm registry's `node` package (installed once under `target/test-node`).

#[path = "../../../tests/common/workspace.rs"]
mod workspace;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The package's folder (bindings/node).
fn package_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command in the package folder; panics with its output when it fails.
fn run(command: &mut Command, what: &str) -> Output {
    let out = command
        .current_dir(package_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{what}: cannot run {command:?} ({e}); is Node.js installed? (./run.sh installs it)"
            )
        });
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `npm install && npm run build`, once per test binary.
fn build() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        run(
            Command::new("npm").args(["install", "--no-audit", "--no-fund"]),
            "npm install",
        );
        let mut build = Command::new("npm");
        build.args(["run", "build"]);
        // @napi-rs/cli needs Node 20 or later: on an older Node (Debian 12 ships 18), the
        // registry's runs the build.
        let first = major(Path::new("node"));
        if first < 20 {
            let node = second_node(first);
            let path = std::env::var_os("PATH").unwrap_or_default();
            let dirs = std::iter::once(node.parent().unwrap().to_path_buf())
                .chain(std::env::split_paths(&path));
            build.env("PATH", std::env::join_paths(dirs).unwrap());
        }
        // The inner cargo must not see the variables cargo set for this test crate.
        workspace::clear_cargo_test_env(&mut build);
        run(&mut build, "npm run build");
        for file in ["index.js", "index.d.ts"] {
            assert!(
                package_dir().join(file).exists(),
                "npm run build did not write {file}"
            );
        }
    });
}

/// The major version of a Node.js binary.
fn major(node: &Path) -> u32 {
    let out = run(Command::new(node).arg("--version"), "node --version");
    let version = String::from_utf8_lossy(&out.stdout);
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the version {version:?} of {}", node.display()))
}

/// A Node.js of another major version than `node`'s, from the npm registry's `node` package
/// (installed once per test binary; kept in target/ for the next run).
fn second_node(first_major: u32) -> PathBuf {
    static SECOND: OnceLock<PathBuf> = OnceLock::new();
    SECOND
        .get_or_init(|| {
            let major = if first_major == 22 { 20 } else { 22 };
            let dir = workspace::profile_dir()
                .parent()
                .expect("the profile folder is in target/")
                .join("test-node")
                .join(major.to_string());
            let node = dir.join("node_modules").join(".bin").join("node");
            if !node.exists() {
                std::fs::create_dir_all(&dir).unwrap();
                run(
                    Command::new("npm")
                        .args([
                            "install",
                            "--no-audit",
                            "--no-fund",
                            "--no-save",
                            "--prefix",
                        ])
                        .arg(&dir)
                        .arg(format!("node@{major}")),
                    "installing a second Node.js from the npm registry",
                );
            }
            assert_eq!(self::major(&node), major);
            node
        })
        .clone()
}

/// Runs the `node --test` files with `node`.
fn node_tests(node: &Path) {
    build();
    let mut files: Vec<PathBuf> = std::fs::read_dir(package_dir().join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "test files: {files:?}");
    let out = run(
        Command::new(node)
            .arg("--test")
            .args(&files)
            .env("GGUF_EMBED_TEST_MODEL", workspace::f32_model())
            .env("GGUF_EMBED_TEST_MODEL_Q8", workspace::q8_model())
            .env("GGUF_EMBED_CLI", workspace::cli())
            .env(
                "GGUF_EMBED_REFERENCE",
                workspace::models_dir().join("reference.json"),
            )
            // The tests' models and downloads stay out of the user's caches.
            .env(
                "HF_HUB_CACHE",
                workspace::profile_dir().join("test-hf-cache"),
            )
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HF_ENDPOINT"),
        &format!("node --test with Node {}", major(node)),
    );
    // The runner's summary, for the cargo test log.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("ℹ ") || l.starts_with("# "))
        .collect();
    eprintln!("Node {}:\n{}", major(node), summary.join("\n"));
}

#[test]
fn package_builds_from_source_and_its_generated_types_check() {
    build();
    let types = std::fs::read_to_string(package_dir().join("index.d.ts")).unwrap();
    for declaration in [
        "export declare class Embedder",
        "static load(model: string, options?: LoadOptions): Promise<Embedder>",
        "export interface EmbedOptions",
        "export declare function defaultThreads(): number",
    ] {
        assert!(
            types.contains(declaration),
            "index.d.ts lacks {declaration:?}:\n{types}"
        );
    }
    assert!(
        !types.contains("_pauseForTests"),
        "the test-only method is not part of the types"
    );
    run(
        Command::new("npx").args([
            "tsc",
            "--noEmit",
            "--strict",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--target",
            "es2022",
            "--types",
            "node",
            "tests/types.mts",
        ]),
        "tsc on tests/types.mts",
    );
}

#[test]
fn node_tests_pass_on_this_machines_node() {
    node_tests(Path::new("node"));
}

#[test]
fn node_tests_pass_on_a_second_node_major_version() {
    let first = major(Path::new("node"));
    node_tests(&second_node(first));
}
