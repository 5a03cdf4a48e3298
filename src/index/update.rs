//! Bringing an index up to date with its repository in two steps: the lexical pass writes
//! new and changed files' chunks with their text (searchable at once), then the embedding
//! queue is drained in priority order; only chunks whose exact text no stored chunk has are
//! embedded.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::chunk::{Chunk, chunk_file, embedded_text};
use super::classify::{Classifier, Origin, rank};
use super::lexical::parts_column;
use super::pending::{Fault, Held, HeldBytes, Listed, ReadFile, Reader};
use super::store::{KnownVector, NewChunk, NewFile, PendingText, Store, vector_blob};
use super::walk::{SkipReason, Unreadable, walk_each};
use super::{EmbedReport, Index, IndexError, IndexOptions, UpdateEvent, UpdateReport, unix_now};
use crate::{EmbedOptions, Embedder, Instruction, PendingEmbeddings, Priority};

/// What the chunks of an index were cut by; bumped when chunk boundaries, names or kinds
/// change (2: at definitions, by tree-sitter; 3: C++ members defined outside their class are
/// methods; 4: tiny leftovers join a neighbour). An index chunked by another version
/// re-chunks every file on its next update (chunks whose text is unchanged keep their
/// vectors), so that it never mixes two ways of cutting for long.
pub(super) const CHUNKER_VERSION: &str = "4";

/// Files per write transaction of the lexical pass at most; a group also ends at
/// [`IndexOptions::group_bytes`] of text.
const GROUP_FILES: usize = 64;
/// Texts per embedding group at most.
const GROUP_TEXTS: usize = 256;
/// Tokens per embedding group at most (enough to keep the engine's decodes full).
const GROUP_TOKENS: usize = 16_384;
/// The engine time one embedding group should take. The queue order is read again between
/// groups, and two groups are in flight (one decoding, the next queued behind it), so a file
/// a search asks for is embedded within about three groups' time.
const GROUP_SECONDS: f64 = 1.5;

impl Index {
    /// Brings the index up to date with `repo`: [`update_lexical`](Self::update_lexical),
    /// then [`embed_pending`](Self::embed_pending) until every chunk that should have a vector
    /// has one. A search from another thread or process finds every chunk written so far
    /// (lexically) and every chunk embedded so far (semantically) while it runs. Takes the
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
        let mut report = self.update_lexical(repo, embedder, options, progress)?;
        let embedded = self.embed_pending(embedder, options, &|| false, progress)?;
        report.add(&embedded);
        report.seconds = started.elapsed().as_secs_f64();
        self.record_run(&report)?;
        Ok(report)
    }

    /// The lexical pass of an update: new and changed files are chunked and written with their
    /// text (searchable lexically at once) and with the vector of every chunk whose text is
    /// stored already (an unchanged chunk of an edited file, a moved file, a copied block);
    /// the other chunks wait in the embedding queue. Deleted files are removed last. Files are
    /// read, chunked and written group by group (one transaction each), so the text held at
    /// once is bounded by [`IndexOptions::group_bytes`] and a killed run keeps every group
    /// written.
    pub fn update_lexical(
        &mut self,
        repo: &Path,
        embedder: &Embedder,
        options: &IndexOptions,
        progress: &dyn Fn(&UpdateEvent),
    ) -> Result<UpdateReport, IndexError> {
        let started = Instant::now();
        self.ensure_writer()?;
        self.pass = Some(self.store.start_pass()?);
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
        let known = self.store.known_files()?;
        let classifier = Classifier::new(repo);
        // The walk keeps no text: an unchanged file is read, hashed and dropped, a new or
        // changed one is listed and read again when its group is chunked. So the text held
        // at once is a group's, whatever the size of the repository.
        let held = Held::default();
        let mut present: HashSet<String> = HashSet::new();
        let mut changed: Vec<Listed> = Vec::new();
        let mut reclassified: Vec<(i64, i64, bool)> = Vec::new();
        let mut unchanged_files = 0;
        let walked = walk_each(
            repo,
            options.max_file_bytes,
            options.limit,
            self.path.parent(),
            &mut |file, path| {
                let _text = held.hold(file.text.len());
                let origin = classifier.origin(&file.path, &file.text);
                match known.get(&file.path) {
                    Some(k) if k.sha256 == sha256_hex(file.text.as_bytes()) => {
                        unchanged_files += 1;
                        let lexical_only = options.is_lexical_only(origin);
                        if k.origin != origin as i64 || k.lexical_only != lexical_only {
                            reclassified.push((k.id, origin as i64, lexical_only));
                        }
                    }
                    _ => changed.push(Listed {
                        rel: file.path.clone(),
                        path: path.to_path_buf(),
                        bytes: file.text.len(),
                        origin,
                    }),
                }
                present.insert(file.path);
            },
        )
        .map_err(|e| IndexError::io(repo, e))?;
        if !reclassified.is_empty() {
            self.store.set_origins(&reclassified)?;
        }
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
        self.write_lexical(&mut reader, embedder, options, &mut report, progress)?;
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
        let gone: Vec<&String> = known.keys().filter(|p| !present.contains(*p)).collect();
        if !gone.is_empty() {
            self.store.delete_files(&gone)?;
        }
        report.removed_files = gone.len();
        // Imported vectors that chunks took live on in those chunks.
        self.store.prune_imported()?;
        let counts = self.store.counts()?;
        report.lexical_only_files = counts.vendored_files + counts.generated_files;
        report.pending_chunks = counts.pending;
        report.lexical_seconds = started.elapsed().as_secs_f64();
        report.seconds = report.lexical_seconds;
        Ok(report)
    }

    /// Reads, chunks and writes the listed files group by group, with the stored vector of
    /// every chunk whose text some stored chunk has.
    fn write_lexical(
        &self,
        files: &mut Reader,
        embedder: &Embedder,
        options: &IndexOptions,
        report: &mut UpdateReport,
        progress: &dyn Fn(&UpdateEvent),
    ) -> Result<(), IndexError> {
        let count = |text: &str| {
            embedder
                .count_tokens(text, &Instruction::None)
                .unwrap_or(usize::MAX)
        };
        let mut done_files = 0;
        let mut written = 0;
        while let Some(mut group) = next_group(files, options, &count) {
            report.reused_chunks += group.find_stored(&self.store)?;
            self.store.write_files(&group.rows(), unix_now())?;
            report.embedded_files += group.files.len();
            done_files += group.files.len();
            written += group.files.iter().map(|f| f.chunks.len()).sum::<usize>();
            progress(&UpdateEvent::Written {
                files: done_files,
                chunks: written,
            });
        }
        Ok(())
    }

    /// Embeds the chunks waiting in the queue, group by group in queue order (the files
    /// searches asked for first, most recent request first; then recently modified files;
    /// then source before tests, docs and data), until none is left or `until` says stop
    /// (asked between groups). Each group is written in one transaction; every chunk of an
    /// embedded text takes its vector. The order is read again for every group, so a file a
    /// search asks for meanwhile (from any process) is embedded within a few groups.
    /// Documents are queued at [`Priority::Background`], so that queries on the same
    /// embedder are decoded first.
    pub fn embed_pending(
        &mut self,
        embedder: &Embedder,
        options: &IndexOptions,
        until: &dyn Fn() -> bool,
        progress: &dyn Fn(&UpdateEvent),
    ) -> Result<EmbedReport, IndexError> {
        let started = Instant::now();
        self.ensure_writer()?;
        let dims = self
            .fingerprint()?
            .map_or(options.dimensions.unwrap_or(embedder.dimensions()), |f| {
                f.dimensions
            });
        // A chunk fits its budget unless it is one overlong line: that one is truncated.
        let embed_options = EmbedOptions::documents()
            .with_dimensions(dims)
            .with_max_tokens(options.chunk_tokens)
            .with_truncation_warning(false)
            .with_priority(Priority::Background);
        let mut report = EmbedReport::default();
        let mut pace = Pace::new(options.chunk_tokens);
        let mut in_flight: Option<(Vec<PendingText>, PendingEmbeddings, Instant)> = None;
        let mut stopped = false;
        loop {
            let next = if until() {
                stopped = true;
                None
            } else {
                let skip: HashSet<String> = in_flight
                    .iter()
                    .flat_map(|(texts, _, _)| texts.iter().map(|t| t.text_hash.clone()))
                    .collect();
                let texts = self.store.next_pending(pace.tokens(), GROUP_TEXTS, &skip)?;
                if texts.is_empty() {
                    None
                } else {
                    let pending = embedder.submit(
                        &texts.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(),
                        &embed_options,
                    )?;
                    Some((texts, pending, Instant::now()))
                }
            };
            if let Some((texts, pending, submitted)) = in_flight.take() {
                let embeddings = pending.wait()?;
                let tokens: usize = embeddings.iter().map(|e| e.tokens).sum();
                let blobs: Vec<Vec<u8>> =
                    embeddings.iter().map(|e| vector_blob(&e.vector)).collect();
                let rows: Vec<(&str, Option<usize>, &[u8])> = texts
                    .iter()
                    .zip(&embeddings)
                    .zip(&blobs)
                    .map(|((t, e), b)| (t.text_hash.as_str(), Some(e.tokens), b.as_slice()))
                    .collect();
                pace.done(embeddings.len(), tokens, submitted);
                let filled = self.store.write_vectors(&rows, pace.chunks_per_second())?;
                report.chunks += embeddings.len();
                report.filled_chunks += filled;
                report.tokens += tokens;
                report.truncated_chunks += embeddings.iter().filter(|e| e.truncated).count();
                let counts = self.store.counts()?;
                progress(&UpdateEvent::Embedded {
                    embedded: counts.total - counts.pending,
                    total: counts.total,
                    tokens: report.tokens,
                });
            }
            match next {
                Some(n) => in_flight = Some(n),
                None => break,
            }
        }
        report.complete = !stopped;
        if report.complete {
            // Every chunk written by the last lexical pass has its vector: that pass is over.
            if let Some(pass) = self.pass.take() {
                self.store.finish_pass(pass)?;
            }
            self.store.record_rate(None)?;
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Records an update's report as the last run (for `--stats`).
    pub(super) fn record_run(&self, report: &UpdateReport) -> Result<(), IndexError> {
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
        self.store.set_meta("last_run", &run.to_string())
    }
}

/// The size of embedding groups: as many tokens as the engine embeds in [`GROUP_SECONDS`],
/// by the rate measured on the groups so far.
struct Pace {
    /// Tokens per second, once measured.
    tokens_per_second: Option<f64>,
    chunks_per_second: Option<f64>,
    /// When the last group came back.
    last_done: Option<Instant>,
    /// The smallest group: one chunk.
    min: usize,
}

impl Pace {
    fn new(chunk_tokens: usize) -> Self {
        Self {
            tokens_per_second: None,
            chunks_per_second: None,
            last_done: None,
            min: chunk_tokens,
        }
    }

    /// The tokens of the next group.
    fn tokens(&self) -> usize {
        match self.tokens_per_second {
            // Before any measurement: a small first group, so that the first vectors (and
            // the measurement) come soon.
            None => (4 * self.min).min(GROUP_TOKENS),
            Some(rate) => ((rate * GROUP_SECONDS) as usize).clamp(self.min, GROUP_TOKENS),
        }
    }

    /// A group of `chunks` texts and `tokens` tokens submitted at `submitted` came back now.
    /// The engine worked on it since it was submitted or since the group before it came
    /// back, whichever is later.
    fn done(&mut self, chunks: usize, tokens: usize, submitted: Instant) {
        let now = Instant::now();
        let since = self.last_done.map_or(submitted, |d| d.max(submitted));
        let seconds = now.duration_since(since).as_secs_f64().max(1e-3);
        let blend = |old: Option<f64>, new: f64| Some(old.map_or(new, |o| 0.5 * o + 0.5 * new));
        self.tokens_per_second = blend(self.tokens_per_second, tokens as f64 / seconds);
        self.chunks_per_second = blend(self.chunks_per_second, chunks as f64 / seconds);
        self.last_done = Some(now);
    }

    fn chunks_per_second(&self) -> Option<f64> {
        self.chunks_per_second
    }
}

/// A file ready to be written: its chunks and hash.
struct PreparedFile {
    path: String,
    sha256: String,
    bytes: usize,
    origin: Origin,
    lexical_only: bool,
    rank: i64,
    chunks: Vec<PreparedChunk>,
    /// Its text counted as held until the file is written and dropped.
    _held: HeldBytes,
}

/// A chunk, the hash of its embedded text, its tokens and, when one is stored, its vector
/// (with its token count, unless it was imported).
struct PreparedChunk {
    chunk: Chunk,
    text_hash: String,
    parts: String,
    tokens: usize,
    vector: Option<KnownVector>,
}

/// Files written together.
struct Group {
    files: Vec<PreparedFile>,
}

impl Group {
    /// Takes the stored vector of every chunk whose text some stored chunk has; returns how
    /// many did.
    fn find_stored(&mut self, store: &Store) -> Result<usize, IndexError> {
        let mut found: HashMap<String, Option<KnownVector>> = HashMap::new();
        let mut reused = 0;
        for file in &mut self.files {
            for c in &mut file.chunks {
                if !found.contains_key(&c.text_hash) {
                    found.insert(c.text_hash.clone(), store.vector_for_hash(&c.text_hash)?);
                }
                c.vector = found[&c.text_hash].clone();
                reused += c.vector.is_some() as usize;
            }
        }
        Ok(reused)
    }

    fn rows(&self) -> Vec<NewFile<'_>> {
        self.files
            .iter()
            .map(|f| NewFile {
                path: &f.path,
                sha256: &f.sha256,
                bytes: f.bytes,
                origin: f.origin as i64,
                lexical_only: f.lexical_only,
                rank: f.rank,
                chunks: f
                    .chunks
                    .iter()
                    .map(|c| NewChunk {
                        start_line: c.chunk.start_line,
                        end_line: c.chunk.end_line,
                        symbol: c.chunk.symbol.as_deref(),
                        kind: c.chunk.kind.as_deref(),
                        text_hash: &c.text_hash,
                        tokens: c.vector.as_ref().and_then(|v| v.0).unwrap_or(c.tokens),
                        text: &c.chunk.text,
                        parts: &c.parts,
                        vector: c.vector.as_ref().map(|v| v.1.as_slice()),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Reads and chunks the next files, up to [`GROUP_FILES`] or `group_bytes` of text (a larger
/// file makes a group of its own).
fn next_group(
    files: &mut Reader,
    options: &IndexOptions,
    count: &dyn Fn(&str) -> usize,
) -> Option<Group> {
    let mut group = Group { files: Vec::new() };
    let mut bytes = 0;
    while group.files.len() < GROUP_FILES {
        // Decided by the size the walk saw, before reading: a file read is held.
        if !group.files.is_empty()
            && files
                .peek_bytes()
                .is_some_and(|b| bytes + b > options.group_bytes)
        {
            break;
        }
        let Some(ReadFile {
            file,
            sha256,
            origin,
            modified,
            held,
        }) = files.next()
        else {
            break;
        };
        let chunks = chunk_file(&file.path, &file.text, options.chunk_tokens, count);
        bytes += file.text.len();
        let path_parts = parts_column(&file.path);
        group.files.push(PreparedFile {
            bytes: file.text.len(),
            sha256,
            origin,
            lexical_only: options.is_lexical_only(origin),
            rank: rank(&file.path, modified),
            chunks: chunks
                .into_iter()
                .map(|chunk| {
                    let text = embedded_text(&chunk);
                    PreparedChunk {
                        text_hash: sha256_hex(text.as_bytes()),
                        tokens: count(&text).min(options.chunk_tokens),
                        // A method's container is in its symbol, not always in its text
                        // (`Parser.parse` in Python): the symbol's words are terms too.
                        parts: format!(
                            "{path_parts}{}{}",
                            chunk.symbol.as_deref().map_or(String::new(), symbol_terms),
                            parts_column(&chunk.text)
                        ),
                        chunk,
                        vector: None,
                    }
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
