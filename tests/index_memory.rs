//! An update holds a bounded amount of source text, whatever the size of the repository:
//! files are read, chunked and written group by group (and embedded afterwards, from the
//! index), and a moved file reuses its vectors even when it lands in another group than its
//! old path.

mod common;

use std::path::Path;

use common::f32_model;
use common::repos::{numbered_files, write};
use gguf_embed::index::{Index, IndexOptions, UpdateReport};
use gguf_embed::{Embedder, EmbedderOptions};

/// Text per group in these tests: a handful of the generated files.
const GROUP_BYTES: usize = 2048;

fn update(db: &Path, repo: &Path, embedder: &Embedder, options: &IndexOptions) -> UpdateReport {
    let mut index = Index::open_or_create(db, embedder, options, false).unwrap();
    index.update(repo, embedder, options, &|_| {}).unwrap()
}

/// The bytes of every file under `root`.
fn tree_bytes(root: &Path) -> usize {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                total += std::fs::metadata(&path).unwrap().len() as usize;
            }
        }
    }
    total
}

/// The chunks the index at `db` holds for these paths.
fn chunks_of(db: &Path, paths: &[String]) -> usize {
    Index::open_read_only(db)
        .unwrap()
        .files()
        .unwrap()
        .iter()
        .filter(|f| paths.contains(&f.path))
        .map(|f| f.chunks.len())
        .sum()
}

#[test]
fn an_update_holds_one_group_of_text_at_most_and_moves_reuse_across_groups() {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    numbered_files(root, 160);
    // One group (the one being chunked and written) is the bound; the tree is far larger.
    let bound = GROUP_BYTES;
    assert!(tree_bytes(root) > 10 * bound, "{}", tree_bytes(root));
    let embedder = Embedder::new(f32_model(), EmbedderOptions::default()).unwrap();
    let options = IndexOptions::default().with_group_bytes(GROUP_BYTES);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");

    let first = update(&db, root, &embedder, &options);
    assert_eq!(first.embedded_files, 160);
    assert!(
        first.peak_text_bytes > 0 && first.peak_text_bytes <= bound,
        "held {} bytes at once",
        first.peak_text_bytes
    );

    // Moves to both ends of the path order (their groups come before and after the old
    // paths' place), edits and deletions.
    let mut moved = Vec::new();
    for i in (0..160).step_by(17) {
        let from = format!("m00/file_{i:04}.rs");
        let to = if i % 2 == 0 {
            format!("aa/moved_{i:04}.rs")
        } else {
            format!("zz/moved_{i:04}.rs")
        };
        std::fs::create_dir_all(root.join(&to).parent().unwrap()).unwrap();
        std::fs::rename(root.join(&from), root.join(&to)).unwrap();
        moved.push(to);
    }
    let mut edited = Vec::new();
    for i in (1..160).step_by(17).take(5) {
        let path = format!("m01/file_{i:04}.rs");
        write(root, &path, format!("fn edited_{i}() -> u32 {{ {i} }}\n"));
        edited.push(path);
    }
    for i in (2..160).step_by(17).take(3) {
        std::fs::remove_file(root.join(format!("m02/file_{i:04}.rs"))).unwrap();
    }
    let second = update(&db, root, &embedder, &options);
    assert_eq!(second.embedded_files, moved.len() + edited.len());
    assert_eq!(second.removed_files, moved.len() + 3);
    assert_eq!(
        second.chunks,
        chunks_of(&db, &edited),
        "only edits are embedded"
    );
    assert_eq!(second.reused_chunks, chunks_of(&db, &moved));
    assert!(second.reused_chunks >= moved.len());
    assert!(
        second.peak_text_bytes <= bound,
        "{}",
        second.peak_text_bytes
    );

    // The index equals a fresh one built in large groups: paths, lines and vectors.
    let fresh = dir.path().join("fresh.sqlite");
    let report = update(&fresh, root, &embedder, &IndexOptions::default());
    assert!(
        report.peak_text_bytes > bound,
        "the default groups are larger"
    );
    assert_eq!(
        Index::open_read_only(&db).unwrap().files().unwrap(),
        Index::open_read_only(&fresh).unwrap().files().unwrap()
    );
    common::vectors::assert_same_chunks(&db, &fresh);
}
