//! Generated repositories for the index, search and MCP tests.

use std::path::Path;

/// Writes `files` small Rust files of twelve one-line functions each, spread over 17 folders
/// (`m00/file_0000.rs` ...): enough files that an update takes a while.
pub fn numbered_files(root: &Path, files: usize) {
    for i in 0..files {
        let body: String = (0..12)
            .map(|l| format!("fn item_{i}_{l}() -> usize {{ {i} * {l} }}\n"))
            .collect();
        let path = root.join(format!("m{:02}/file_{i:04}.rs", i % 17));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
}
