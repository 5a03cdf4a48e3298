//! Bringing an index up to date with its repository: new and changed files are chunked, and
//! only chunks whose exact text no stored chunk has are embedded.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::chunk::{Chunk, chunk_file, embedded_text};
use super::lexical::parts_column;
use super::pending::{Fault, Held, HeldBytes, Listed, ReadFile, Reader};
use super::store::{NewChunk, NewFile, Store, vector_blob};
use super::walk::{SkipReason, Unreadable, walk_each};
use super::{Index, IndexError, IndexOptions, UpdateEvent, UpdateReport, unix_now};
use crate::{EmbedOptions, Embedder, Instruction, PendingEmbeddings};

/// What the chunks of an index were cut by; bumped when chunk boundaries, names or kinds
/// change (2: at definitions, by tree-sitter; 3: C++ members defined outside their class are
/// methods; 4: tiny leftovers join a neighbour). An index chunked by another version
/// re-chunks every file on its next update (chunks whose text is unchanged keep their
/// vectors), so that it never mixes two ways of cutting for long.
pub(super) const CHUNKER_VERSION: &str = "4";

/// Files per write transaction at most; a group also ends at `GROUP_TOKENS`, `GROUP_CHUNKS`
/// or [`IndexOptions::group_bytes`] of text.
const GROUP_FILES: usize = 64;
/// Chunks per group at most: files of many small definitions make many small chunks, and a
/// group is committed only when all of them are embedded.
/// 128 is what `GROUP_TOKENS` allows at the default budget; smaller budgets get no more.
const GROUP_CHUNKS: usize = 128;
/// Tokens per group of files embedded together (enough to keep the engine's decodes full).
const GROUP_TOKENS: usize = 16_384;

impl Index {
    /// Brings the index up to date with `repo`: chunks new and changed files, embeds the
    /// chunks whose text is not stored yet (a chunk that is unchanged, moved or copied keeps
    /// its vector), then removes deleted files. Files are read, chunked, embedded and written
    /// group by group, so the text held at once is bounded by [`IndexOptions::group_bytes`]
    /// and a killed run keeps every group written. `progress` is told how far it got. Takes the
    /// index's writer lock unless this handle holds it ([`IndexError::Busy`] when another
    /// process has it).
    pub fn update(
        &mut self,
        repo: &Path,
        embedder: &Embedder,
        options: &IndexOptions,
        progress: &dyn Fn(&UpdateEvent),
    ) -> Result<UpdateReport, IndexError> {
        let started = Instant::now();
        self.ensure_writer()?;
        // Recorded first, so a search finds the model and the files even after an
        // interrupted run.
        self.store
            .set_meta("model_path", &embedder.info().path.display().to_string())?;
        if let Ok(root) = std::fs::canonicalize(repo) {
            self.store.set_meta("repo", &root.display().to_string())?;
        }
        if self.store.meta("chunker")?.as_deref() != Some(CHUNKER_VERSION) {
            // Chunked another way (or new): every file is chunked again, by this run or, if it
            // is killed, the next (the forgotten hashes say which files are still to do).
            self.store.forget_file_hashes()?;
            self.store.set_meta("chunker", CHUNKER_VERSION)?;
        }
        let known = self.store.file_hashes()?;
        // The walk keeps no text: an unchanged file is read, hashed and dropped, a new or
        // changed one is listed and read again when its group is chunked. So the text held
        // at once is a group's or two, whatever the size of the repository.
        let held = Held::default();
        let mut present: HashSet<String> = HashSet::new();
        let mut changed: Vec<Listed> = Vec::new();
        let mut unchanged_files = 0;
        let walked = walk_each(
            repo,
            options.max_file_bytes,
            options.limit,
            self.path.parent(),
            &mut |file, path| {
                let _text = held.hold(file.text.len());
                if known.get(&file.path) == Some(&sha256_hex(file.text.as_bytes())) {
                    unchanged_files += 1;
                } else {
                    changed.push(Listed {
                        rel: file.path.clone(),
                        path: path.to_path_buf(),
                        bytes: file.text.len(),
                    });
                }
                present.insert(file.path);
            },
        )
        .map_err(|e| IndexError::io(repo, e))?;
        for u in &walked.unreadable {
            tracing::warn!("skipped {}: {}", u.path, u.error);
        }
        let mut report = UpdateReport {
            files: present.len(),
            unchanged_files,
            unreadable: walked.unreadable.clone(),
            ..UpdateReport::default()
        };
        for (_, reason) in &walked.skipped {
            *report.skipped.entry(reason_key(*reason)).or_default() += 1;
        }
        // An indexed file that cannot be read now (or lies in a folder that cannot be listed)
        // keeps its chunks: losing them would be worse than serving the last version.
        present.extend(
            known
                .keys()
                .filter(|p| walked.unreadable.iter().any(|u| kept_by(u, p)))
                .cloned(),
        );
        progress(&UpdateEvent::Planned {
            files: changed.len(),
        });
        let mut reader = Reader::new(changed, options.max_file_bytes, held.clone());
        self.embed_files(&mut reader, embedder, options, &mut report, progress)?;
        for fault in reader.faults {
            report.files -= 1;
            match fault {
                // It is not indexable any more, as the walk would have found: it leaves.
                Fault::Skipped(path, reason) => {
                    present.remove(&path);
                    *report.skipped.entry(reason_key(reason)).or_default() += 1;
                }
                Fault::Unreadable(u) => {
                    tracing::warn!("skipped {}: {}", u.path, u.error);
                    if !kept_by(&u, &u.path) {
                        present.remove(&u.path);
                    }
                    *report.skipped.entry(reason_key(u.reason)).or_default() += 1;
                    report.unreadable.push(u);
                }
            }
        }
        report.peak_text_bytes = held.peak();
        // Removed last, so that a moved or renamed file finds its chunks' vectors under the
        // old path.
        report.removed_files = self.remove_absent(&present, &known)?;
        report.seconds = started.elapsed().as_secs_f64();
        let run = serde_json::json!({
            "finished_at": unix_now(),
            "files": report.files,
            "embedded_files": report.embedded_files,
            "unchanged_files": report.unchanged_files,
            "removed_files": report.removed_files,
            "chunks": report.chunks,
            "reused_chunks": report.reused_chunks,
            "tokens": report.tokens,
            "unreadable": report.unreadable.len(),
            "seconds": report.seconds,
        });
        self.store.set_meta("last_run", &run.to_string())?;
        Ok(report)
    }

    /// Deletes indexed files that are not in the walk.
    fn remove_absent(
        &self,
        present: &HashSet<String>,
        known: &HashMap<String, String>,
    ) -> Result<usize, IndexError> {
        let gone: Vec<&String> = known.keys().filter(|p| !present.contains(*p)).collect();
        if !gone.is_empty() {
            self.store.delete_files(&gone)?;
        }
        Ok(gone.len())
    }

    /// Chunks and embeds changed files group by group, preparing the next group while the
    /// engine embeds the current one, and writes each group in one transaction.
    fn embed_files(
        &self,
        files: &mut Reader,
        embedder: &Embedder,
        options: &IndexOptions,
        report: &mut UpdateReport,
        progress: &dyn Fn(&UpdateEvent),
    ) -> Result<(), IndexError> {
        // A chunk fits its budget unless it is one overlong line: that one is truncated.
        let embed_options = EmbedOptions::documents()
            .with_dimensions(options.dimensions.unwrap_or(embedder.dimensions()))
            .with_max_tokens(options.chunk_tokens)
            .with_truncation_warning(false);
        let count = |text: &str| {
            embedder
                .count_tokens(text, &Instruction::None)
                .unwrap_or(usize::MAX)
        };
        let mut in_flight: Option<(Group, PendingEmbeddings)> = None;
        let mut done_files = 0;
        loop {
            let next = match next_group(files, options.chunk_tokens, options.group_bytes, &count) {
                Some(mut group) => {
                    group.find_stored(&self.store)?;
                    let pending = embedder.submit(&group.texts_to_embed(), &embed_options)?;
                    Some((group, pending))
                }
                None => None,
            };
            if let Some((mut group, pending)) = in_flight.take() {
                let embeddings = pending.wait()?;
                report.chunks += embeddings.len();
                report.tokens += embeddings.iter().map(|e| e.tokens).sum::<usize>();
                report.truncated_chunks += embeddings.iter().filter(|e| e.truncated).count();
                report.reused_chunks += group.reused;
                group.fill(embeddings);
                self.store.write_files(&group.rows(), unix_now())?;
                report.embedded_files += group.files.len();
                done_files += group.files.len();
                progress(&UpdateEvent::Progress {
                    files: done_files,
                    chunks: report.chunks + report.reused_chunks,
                    tokens: report.tokens,
                });
            }
            match next {
                Some(n) => in_flight = Some(n),
                None => return Ok(()),
            }
        }
    }
}

/// A file ready to be written: its chunks and hash.
struct PreparedFile {
    path: String,
    sha256: String,
    bytes: usize,
    chunks: Vec<PreparedChunk>,
    /// Its text counted as held until the file is written and dropped.
    _held: HeldBytes,
}

/// A chunk, the hash of its embedded text and, once known, its vector.
struct PreparedChunk {
    chunk: Chunk,
    text_hash: String,
    parts: String,
    vector: Option<(usize, Vec<u8>)>,
}

/// Files embedded and written together.
struct Group {
    files: Vec<PreparedFile>,
    /// The distinct texts to embed, by hash, in submission order.
    to_embed: Vec<(String, String)>,
    /// Chunks that took a stored vector.
    reused: usize,
}

impl Group {
    /// Takes the stored vector of every chunk whose text some stored chunk has, and lists
    /// the distinct texts left to embed.
    fn find_stored(&mut self, store: &Store) -> Result<(), IndexError> {
        let mut queued: HashSet<String> = HashSet::new();
        for file in &mut self.files {
            for c in &mut file.chunks {
                if queued.contains(&c.text_hash) {
                    // Another chunk of this group has the same text: one embedding serves both.
                    self.reused += 1;
                    continue;
                }
                match store.vector_for_hash(&c.text_hash)? {
                    Some(found) => {
                        c.vector = Some(found);
                        self.reused += 1;
                    }
                    None => {
                        queued.insert(c.text_hash.clone());
                        self.to_embed
                            .push((c.text_hash.clone(), embedded_text(&c.chunk)));
                    }
                }
            }
        }
        Ok(())
    }

    fn texts_to_embed(&self) -> Vec<String> {
        self.to_embed.iter().map(|(_, t)| t.clone()).collect()
    }

    /// Gives every chunk still without a vector the one embedded for its text.
    fn fill(&mut self, embeddings: Vec<crate::Embedding>) {
        let by_hash: HashMap<&str, (usize, Vec<u8>)> = self
            .to_embed
            .iter()
            .zip(embeddings)
            .map(|((hash, _), e)| (hash.as_str(), (e.tokens, vector_blob(&e.vector))))
            .collect();
        for file in &mut self.files {
            for c in &mut file.chunks {
                if c.vector.is_none() {
                    c.vector = by_hash.get(c.text_hash.as_str()).cloned();
                }
            }
        }
    }

    fn rows(&self) -> Vec<NewFile<'_>> {
        self.files
            .iter()
            .map(|f| NewFile {
                path: &f.path,
                sha256: &f.sha256,
                bytes: f.bytes,
                chunks: f
                    .chunks
                    .iter()
                    .map(|c| {
                        let (tokens, vector) =
                            c.vector.as_ref().expect("every chunk has a vector by now");
                        NewChunk {
                            start_line: c.chunk.start_line,
                            end_line: c.chunk.end_line,
                            symbol: c.chunk.symbol.as_deref(),
                            kind: c.chunk.kind.as_deref(),
                            text_hash: &c.text_hash,
                            tokens: *tokens,
                            text: &c.chunk.text,
                            parts: &c.parts,
                            vector,
                        }
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Reads and chunks the next files until the group holds enough tokens to keep the engine
/// busy, or `group_bytes` of text (a larger file makes a group of its own).
fn next_group(
    files: &mut Reader,
    chunk_tokens: usize,
    group_bytes: usize,
    count: &dyn Fn(&str) -> usize,
) -> Option<Group> {
    let mut group = Group {
        files: Vec::new(),
        to_embed: Vec::new(),
        reused: 0,
    };
    let (mut tokens, mut chunk_count, mut bytes) = (0, 0, 0);
    while group.files.len() < GROUP_FILES && tokens < GROUP_TOKENS && chunk_count < GROUP_CHUNKS {
        // Decided by the size the walk saw, before reading: a file read is held.
        if !group.files.is_empty() && files.peek_bytes().is_some_and(|b| bytes + b > group_bytes) {
            break;
        }
        let Some(ReadFile { file, sha256, held }) = files.next() else {
            break;
        };
        let chunks = chunk_file(&file.path, &file.text, chunk_tokens, count);
        tokens += chunks.len() * chunk_tokens / 2;
        chunk_count += chunks.len();
        bytes += file.text.len();
        let path_parts = parts_column(&file.path);
        group.files.push(PreparedFile {
            bytes: file.text.len(),
            sha256,
            chunks: chunks
                .into_iter()
                .map(|chunk| PreparedChunk {
                    text_hash: sha256_hex(embedded_text(&chunk).as_bytes()),
                    // A method's container is in its symbol, not always in its text
                    // (`Parser.parse` in Python): the symbol's words are terms too.
                    parts: format!(
                        "{path_parts}{}{}",
                        chunk.symbol.as_deref().map_or(String::new(), symbol_terms),
                        parts_column(&chunk.text)
                    ),
                    chunk,
                    vector: None,
                })
                .collect(),
            path: file.path,
            _held: held,
        });
    }
    (!group.files.is_empty()).then_some(group)
}

/// A skip reason as the report's key (`too_large`, `binary`, ...).
fn reason_key(reason: SkipReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A symbol's words and the parts of its identifiers, for the lexical index.
fn symbol_terms(symbol: &str) -> String {
    format!("{symbol} {}", parts_column(symbol))
}

/// Whether the indexed file `path` stays because of the unreadable path `u`: it is that file,
/// or lies in that folder (or the root, when the path is unknown). A vanished file is gone
/// and leaves the index.
fn kept_by(u: &Unreadable, path: &str) -> bool {
    u.reason == SkipReason::Unreadable
        && (u.path.is_empty()
            || path == u.path
            || path
                .strip_prefix(u.path.as_str())
                .is_some_and(|rest| rest.starts_with('/')))
}

/// The sha256 of some bytes, in hex.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    crate::hub::hex(&Sha256::digest(bytes))
}
