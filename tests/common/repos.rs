//! Generated repositories for the index, search and MCP tests.

use std::path::Path;

use gguf_embed::index::Index;

/// Writes `content` at `rel` under `root`, making its folders.
pub fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// The paths the index at `db` holds, in its order (opened read-only: never waits on a
/// writer).
pub fn indexed_paths(db: &Path) -> Vec<String> {
    Index::open_read_only(db)
        .unwrap()
        .files()
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect()
}

/// Writes `files` small Rust files of one twelve-line function each, spread over 17 folders
/// (`m00/file_0000.rs` ...): enough files that an update takes a while. One function per
/// file: chunks follow definitions, and these tests need many files, not many chunks (twelve
/// one-line functions would be twelve chunks, and twelve decodes, per file).
pub fn numbered_files(root: &Path, files: usize) {
    for i in 0..files {
        let lines: String = (0..12)
            .map(|l| format!("    let item_{i}_{l} = {i} * {l};\n"))
            .collect();
        let body = format!("fn items_{i}() -> usize {{\n{lines}    item_{i}_0\n}}\n");
        write(root, &format!("m{:02}/file_{i:04}.rs", i % 17), body);
    }
}
