//! Searching an index: semantic (exact scan of the vectors), lexical (FTS5, BM25) and hybrid
//! (both lists fused by reciprocal rank), with path filters, paging, context lines and a
//! token budget for agents.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use super::codes;
use super::filter::{PathFilter, language_of};
use super::lexical::fts_query;
use super::{Coverage, Index, IndexError};
use crate::{EmbedOptions, Embedder, Instruction, PendingEmbeddings, Priority, Task};

/// The reciprocal-rank-fusion constant: a result at rank `r` (from 1) of a list adds
/// `1 / (k + r)` to its fused score. 60 is the value of the original RRF paper and of the
/// peers (ck, TurboProp's ancestor): large enough that the top few ranks of either list
/// weigh about the same.
pub const DEFAULT_RRF_K: f32 = 60.0;

/// How a query is matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SearchMode {
    /// Semantic and lexical results fused by reciprocal rank, with the lexical results that
    /// contain the whole query as written as a third list.
    #[default]
    Hybrid,
    /// The chunks whose vectors are most similar to the query's.
    Semantic,
    /// The chunks that contain the query's words and identifiers (BM25); needs no model.
    Lexical,
}

impl std::str::FromStr for SearchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hybrid" => Ok(Self::Hybrid),
            "semantic" => Ok(Self::Semantic),
            "lexical" => Ok(Self::Lexical),
            other => Err(format!(
                "unknown search mode {other:?}: hybrid, semantic or lexical"
            )),
        }
    }
}

impl SearchMode {
    /// Whether the mode embeds the query.
    pub fn needs_model(self) -> bool {
        self != Self::Lexical
    }
}

/// How to search.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SearchOptions {
    /// Results to return.
    pub k: usize,
    /// How the query is embedded: the code-search task by default; [`Instruction::None`] embeds
    /// it as a document (to find code like a given snippet).
    pub instruction: Instruction,
    /// Hybrid, semantic or lexical.
    pub mode: SearchMode,
    /// The reciprocal-rank-fusion constant of hybrid search.
    pub rrf_k: f32,
    /// Glob patterns on the path relative to the repository; `!` in front excludes.
    pub globs: Vec<String>,
    /// Only files of these languages (see [`super::language_of`]).
    pub languages: Vec<String>,
    /// Only files under this path.
    pub path_prefix: Option<String>,
    /// Only chunks at least this similar (cosine) to the query; not for lexical search.
    /// Chunks not embedded yet have no similarity and are left out too.
    pub threshold: Option<f32>,
    /// Lines of the file before and after each hit (read from the repository).
    pub context_lines: usize,
    /// Whole results while their estimated tokens fit this budget (the first is always
    /// returned).
    pub max_tokens: Option<usize>,
    /// Results to skip first (for paging).
    pub offset: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            k: 10,
            instruction: Instruction::Task(Task::CodeSearch),
            mode: SearchMode::default(),
            rrf_k: DEFAULT_RRF_K,
            globs: Vec::new(),
            languages: Vec::new(),
            path_prefix: None,
            threshold: None,
            context_lines: 0,
            max_tokens: None,
            offset: 0,
        }
    }
}

impl SearchOptions {
    /// Sets the number of results.
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Sets the search mode.
    pub fn with_mode(mut self, mode: SearchMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the query's instruction.
    pub fn with_instruction(mut self, instruction: Instruction) -> Self {
        self.instruction = instruction;
        self
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Hit {
    /// The file, relative to the repository.
    pub path: String,
    /// First line of the chunk (from 1).
    pub start_line: usize,
    /// Last line of the chunk.
    pub end_line: usize,
    /// The ranking score of the mode: cosine similarity (semantic), BM25 relevance (lexical,
    /// higher is better) or the fused reciprocal-rank score (hybrid).
    pub score: f32,
    /// The chunk's text.
    pub snippet: String,
    /// The definition the chunk holds, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Its kind (`fn`, `class`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The file's language, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<&'static str>,
    /// Cosine similarity to the query (semantic and hybrid search; absent for a chunk that is
    /// not embedded yet, which hybrid search finds lexically).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// Rank in the semantic list (from 1), when it was there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semantic_rank: Option<usize>,
    /// Rank in the lexical list (from 1), when it was there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lexical_rank: Option<usize>,
    /// The chunk's tokens.
    pub tokens: usize,
    /// The lines before the chunk (with `context_lines`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_before: Option<String>,
    /// The lines after the chunk (with `context_lines`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_after: Option<String>,
}

/// What a search found, and how much of the index it could search semantically: both read
/// from the same state of the index.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SearchResults {
    /// The hits, best first.
    #[serde(rename = "results")]
    pub hits: Vec<Hit>,
    /// The index's semantic coverage when it was searched (lexical search covers every
    /// chunk written).
    pub coverage: Coverage,
}

/// A ranked candidate before it becomes a [`Hit`].
#[derive(Debug, Clone, PartialEq)]
struct Ranked {
    id: i64,
    score: f32,
    similarity: Option<f32>,
    semantic_rank: Option<usize>,
    lexical_rank: Option<usize>,
}

impl Index {
    /// Searches the index. Semantic and hybrid search embed the query with `embedder`
    /// (checked to be the model the index was built with; queued ahead of any documents
    /// the embedder is indexing); lexical search needs none. The whole search reads one
    /// state of the index, whatever a writer commits meanwhile: hybrid search covers every
    /// chunk written so far lexically and every chunk embedded so far semantically, and the
    /// coverage says how many that is. The files of the lexical hits that still wait for
    /// their vectors move to the front of the embedding queue (see [`Index::prioritize`]).
    pub fn search(
        &self,
        embedder: Option<&Embedder>,
        query: &str,
        options: &SearchOptions,
    ) -> Result<SearchResults, IndexError> {
        if options.threshold.is_some() && options.mode == SearchMode::Lexical {
            return Err(IndexError::InvalidQuery(
                "a similarity threshold needs semantic or hybrid search".into(),
            ));
        }
        if options.rrf_k.is_nan() || options.rrf_k <= 0.0 {
            return Err(IndexError::InvalidQuery(format!(
                "the fusion constant must be positive, not {}",
                options.rrf_k
            )));
        }
        let filter = PathFilter::new(
            &options.globs,
            &options.languages,
            options.path_prefix.as_deref(),
        )?;
        let embedder = match (options.mode.needs_model(), embedder) {
            (false, _) => None,
            (true, Some(e)) => Some(e),
            (true, None) => {
                return Err(IndexError::InvalidQuery(
                    "semantic and hybrid search need a model".into(),
                ));
            }
        };
        let (results, lexical_files) = self
            .store
            .snapshot(|| self.search_snapshot(embedder, query, options, &filter))?;
        // Outside the read transaction: this writes (through another connection when this
        // one is read-only).
        if let Err(e) = self.want(&lexical_files) {
            tracing::debug!("cannot move the hits' files up the queue: {e}");
        }
        Ok(results)
    }

    /// The search itself, inside one read transaction; also returns the files of the lexical
    /// list.
    fn search_snapshot(
        &self,
        embedder: Option<&Embedder>,
        query: &str,
        options: &SearchOptions,
        filter: &PathFilter,
    ) -> Result<(SearchResults, Vec<i64>), IndexError> {
        let allowed: Option<HashSet<i64>> = if filter.is_empty() {
            None
        } else {
            Some(
                self.store
                    .file_paths()?
                    .into_iter()
                    .filter(|(_, p)| filter.matches(p))
                    .map(|(id, _)| id)
                    .collect(),
            )
        };
        let keep = |file_id: i64| allowed.as_ref().is_none_or(|a| a.contains(&file_id));
        // Vendored and generated files are searched lexically only, vectors or not.
        let lexical_only = self.store.lexical_only_files()?;
        let keep_semantic = |file_id: i64| keep(file_id) && !lexical_only.contains(&file_id);
        let want = options.offset + options.k;
        // Fusion looks deeper than the page, so that a chunk ranked well by one list and
        // moderately by the other can still come first.
        let pool = if options.mode == SearchMode::Hybrid {
            want.max(10) * 3
        } else {
            want
        };

        // The query is embedded on the engine's threads while this one runs the lexical
        // search: hybrid search then costs about the longer of the two, not their sum.
        let pending = embedder
            .map(|e| self.submit_query(e, query, &options.instruction))
            .transpose()?;
        let fts = match options.mode {
            SearchMode::Semantic => None,
            _ => fts_query(query),
        };
        let lexical = match fts {
            Some(q) => self
                .store
                .lexical(&q, pool, allowed.is_some().then_some(&keep as _))?,
            None => Vec::new(),
        };
        let (query_vector, semantic) = match pending {
            Some(pending) => {
                let vector = pending.wait()?.remove(0).vector;
                let hits = self.scan(&vector, pool, &keep_semantic)?;
                (Some(vector), hits)
            }
            None => (None, Vec::new()),
        };

        let mut ranked = match options.mode {
            SearchMode::Semantic => semantic
                .iter()
                .enumerate()
                .map(|(i, &(id, s))| Ranked {
                    id,
                    score: s,
                    similarity: Some(s),
                    semantic_rank: Some(i + 1),
                    lexical_rank: None,
                })
                .collect(),
            SearchMode::Lexical => lexical
                .iter()
                .enumerate()
                .map(|(i, &(id, s))| Ranked {
                    id,
                    score: s,
                    similarity: None,
                    semantic_rank: None,
                    lexical_rank: Some(i + 1),
                })
                .collect(),
            SearchMode::Hybrid => {
                let q = query_vector.as_deref().expect("hybrid embeds the query");
                self.fuse(&semantic, &lexical, options.rrf_k, q, query)?
            }
        };
        if let Some(t) = options.threshold {
            ranked.retain(|r| r.similarity.is_some_and(|s| s >= t));
        }
        let page: Vec<Ranked> = ranked
            .into_iter()
            .skip(options.offset)
            .take(options.k)
            .collect();
        let hits = self.hits(page, options)?;
        let coverage = self.coverage_now()?;
        let lexical_ids: Vec<i64> = lexical.iter().map(|&(id, _)| id).collect();
        let files = if coverage.is_complete() {
            Vec::new()
        } else {
            self.store.files_of(&lexical_ids)?
        };
        Ok((SearchResults { hits, coverage }, files))
    }

    /// Queues a query's embedding for this index, after checking that `embedder` is its
    /// model; dropping the handle cancels it.
    fn submit_query(
        &self,
        embedder: &Embedder,
        query: &str,
        instruction: &Instruction,
    ) -> Result<PendingEmbeddings, IndexError> {
        let fingerprint = self
            .fingerprint()?
            .ok_or_else(|| IndexError::Missing(self.path.clone()))?;
        fingerprint.check_embedder(&self.store, embedder, &self.path)?;
        let embed = EmbedOptions::default()
            .with_instruction(instruction.clone())
            .with_dimensions(fingerprint.dimensions)
            .with_priority(Priority::Query);
        Ok(embedder.submit(&[query], &embed)?)
    }

    /// Reciprocal rank fusion of the semantic list, the lexical list and a third list: the
    /// lexical results that contain the whole query as written in their text or path (case
    /// and `_` aside, so `parseInvoiceTotal` finds `parse_invoice_total`), in lexical order. The third list is what puts the chunk holding an
    /// identifier, a path or an error message first even when the query's meaning is vague
    /// to the model. Every candidate gets its cosine similarity (read for those only the
    /// lexical list found; none for a chunk not embedded yet).
    fn fuse(
        &self,
        semantic: &[(i64, f32)],
        lexical: &[(i64, f32)],
        rrf_k: f32,
        query_vector: &[f32],
        query: &str,
    ) -> Result<Vec<Ranked>, IndexError> {
        let sem_ids: Vec<i64> = semantic.iter().map(|&(id, _)| id).collect();
        let lex_ids: Vec<i64> = lexical.iter().map(|&(id, _)| id).collect();
        let needle = loose(query.trim());
        let mut exact_ids = Vec::new();
        if !needle.is_empty() {
            for &id in &lex_ids {
                let row = self.store.chunk(id)?;
                if loose(&row.text).contains(&needle) || loose(&row.path).contains(&needle) {
                    exact_ids.push(id);
                }
            }
        }
        let similarity: HashMap<i64, f32> = semantic.iter().copied().collect();
        let mut out = Vec::new();
        for (id, score) in rrf(&[&exact_ids, &sem_ids, &lex_ids], rrf_k) {
            let sim = match similarity.get(&id) {
                Some(&s) => Some(s),
                None => self
                    .store
                    .with_vector(id, |blob| blob.map(|b| dot_blob(b, query_vector)))?,
            };
            out.push(Ranked {
                id,
                score,
                similarity: sim,
                semantic_rank: sem_ids.iter().position(|&x| x == id).map(|p| p + 1),
                lexical_rank: lex_ids.iter().position(|&x| x == id).map(|p| p + 1),
            });
        }
        Ok(out)
    }

    /// The `k` embedded chunks whose vectors are most similar to `query` (exact scan), best
    /// first, read from one state of the index (lexical-only files left out).
    pub fn search_vector(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, IndexError> {
        self.store.snapshot(|| {
            let lexical_only = self.store.lexical_only_files()?;
            let ranked = self
                .scan(query, k, &|file| !lexical_only.contains(&file))?
                .into_iter()
                .enumerate()
                .map(|(i, (id, s))| Ranked {
                    id,
                    score: s,
                    similarity: Some(s),
                    semantic_rank: Some(i + 1),
                    lexical_rank: None,
                })
                .collect();
            self.hits(ranked, &SearchOptions::default())
        })
    }

    /// The ids and scores of the `k` best chunks of the files `keep` accepts.
    fn scan(
        &self,
        query: &[f32],
        k: usize,
        keep: &dyn Fn(i64) -> bool,
    ) -> Result<Vec<(i64, f32)>, IndexError> {
        let mut best = TopK::new(k);
        if k == 0 {
            return Ok(Vec::new());
        }
        if !self.store.has_codes() {
            self.store.scan_vectors(|id, file_id, blob| {
                if blob.len() == query.len() * 4 && keep(file_id) {
                    best.offer(dot_blob(blob, query), id);
                }
            })?;
            return Ok(best.into_sorted());
        }
        // Two steps, with the same result as the scan above: the codes give every chunk an
        // approximate score within a known bound of its exact one; the `k`-th best lower
        // bound is then a score that `k` chunks are sure to reach, and only the chunks
        // whose upper bound reaches it are scored exactly, from their float vectors, in id
        // order as above (so ties resolve the same way).
        let query_l1: f32 = query.iter().map(|x| x.abs()).sum();
        let mut floor = TopK::new(k);
        let mut candidates: Vec<(i64, f32)> = Vec::new();
        self.store.scan_codes(|id, file_id, scale, code| {
            if code.len() != query.len() || !keep(file_id) {
                return;
            }
            let approx = codes::dot(scale, code, query);
            let bound = codes::error_bound(scale, query_l1);
            floor.offer(approx - bound, id);
            if floor.len() < k || approx + bound >= floor.worst() {
                candidates.push((id, approx + bound));
            }
        })?;
        let reach = if floor.len() < k {
            f32::NEG_INFINITY
        } else {
            floor.worst()
        };
        for (id, upper) in candidates {
            if upper >= reach
                && let Some(score) = self
                    .store
                    .with_vector(id, |blob| blob.map(|b| dot_blob(b, query)))?
            {
                best.offer(score, id);
            }
        }
        Ok(best.into_sorted())
    }

    /// Turns ranked ids into hits: text, symbol, context lines, then the token budget.
    fn hits(&self, ranked: Vec<Ranked>, options: &SearchOptions) -> Result<Vec<Hit>, IndexError> {
        let repo = if options.context_lines > 0 {
            self.store.meta("repo")?
        } else {
            None
        };
        let mut hits = Vec::new();
        let mut spent = 0usize;
        for r in ranked {
            let row = self.store.chunk(r.id)?;
            let (context_before, context_after) = match &repo {
                Some(root) => context(
                    &Path::new(root).join(&row.path),
                    row.start_line,
                    row.end_line,
                    options.context_lines,
                ),
                None => (None, None),
            };
            let cost = row.tokens
                + [&context_before, &context_after]
                    .iter()
                    .map(|c| c.as_ref().map_or(0, |t| t.len().div_ceil(4)))
                    .sum::<usize>();
            if let Some(budget) = options.max_tokens
                && !hits.is_empty()
                && spent + cost > budget
            {
                break;
            }
            spent += cost;
            hits.push(Hit {
                language: language_of(&row.path),
                path: row.path,
                start_line: row.start_line,
                end_line: row.end_line,
                score: r.score,
                snippet: row.text,
                symbol: row.symbol,
                kind: row.kind,
                similarity: r.similarity,
                semantic_rank: r.semantic_rank,
                lexical_rank: r.lexical_rank,
                tokens: row.tokens,
                context_before,
                context_after,
            });
        }
        Ok(hits)
    }
}

/// Text compared for an exact match: lower case, without `_`.
fn loose(text: &str) -> String {
    text.chars()
        .filter(|&c| c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The `n` lines of a file before line `start` and after line `end` (from 1), read now;
/// `None` where there are none or the file cannot be read.
fn context(file: &Path, start: usize, end: usize, n: usize) -> (Option<String>, Option<String>) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return (None, None);
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let from = start.saturating_sub(1 + n).min(lines.len());
    let before = lines[from..start.saturating_sub(1).min(lines.len())].concat();
    let after_start = end.min(lines.len());
    let after = lines[after_start..(end + n).min(lines.len())].concat();
    let some = |s: String| (!s.is_empty()).then_some(s);
    (some(before), some(after))
}

/// Reciprocal rank fusion: each id scores `Σ 1 / (k + rank)` over the lists it is in (rank
/// from 1); best first, ties by the first list's order and then the id.
pub fn rrf(lists: &[&[i64]], k: f32) -> Vec<(i64, f32)> {
    let mut scores: HashMap<i64, f32> = HashMap::new();
    let mut first_seen: Vec<i64> = Vec::new();
    for list in lists {
        for (i, &id) in list.iter().enumerate() {
            let entry = scores.entry(id).or_insert_with(|| {
                first_seen.push(id);
                0.0
            });
            *entry += 1.0 / (k + (i + 1) as f32);
        }
    }
    let mut out: Vec<(i64, f32)> = first_seen.into_iter().map(|id| (id, scores[&id])).collect();
    // A stable sort keeps the order of first appearance among equal scores.
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// The dot product of a stored little-endian f32 blob with a vector, read in place, with
/// eight independent sums so the compiler can vectorise it.
pub(super) fn dot_blob(blob: &[u8], query: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let blocks = blob.chunks_exact(32).zip(query.chunks_exact(8));
    for (bytes, q) in blocks {
        for lane in 0..8 {
            let b = &bytes[lane * 4..lane * 4 + 4];
            sums[lane] += f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * q[lane];
        }
    }
    let tail = query.len() / 8 * 8;
    let rest: f32 = blob[tail * 4..]
        .chunks_exact(4)
        .zip(&query[tail..])
        .map(|(b, q)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * q)
        .sum();
    sums.iter().sum::<f32>() + rest
}

/// The `k` best (score, id) pairs offered, keeping the first offered among equal scores.
struct TopK {
    k: usize,
    heap: BinaryHeap<Scored>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    fn len(&self) -> usize {
        self.heap.len()
    }

    /// The lowest score kept (only meaningful once `k` are kept).
    fn worst(&self) -> f32 {
        self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.score)
    }

    fn offer(&mut self, score: f32, id: i64) {
        if self.heap.len() < self.k || self.heap.peek().is_some_and(|w| score > w.score) {
            self.heap.push(Scored { score, id });
            if self.heap.len() > self.k {
                self.heap.pop();
            }
        }
    }

    /// The pairs kept, best first, as (id, score).
    fn into_sorted(self) -> Vec<(i64, f32)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|s| (s.id, s.score))
            .collect()
    }
}

/// A candidate in the top-k heap, ordered so the worst is on top.
#[derive(PartialEq)]
struct Scored {
    score: f32,
    id: i64,
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Reversed: BinaryHeap is a max-heap and we keep the lowest score on top.
        other
            .score
            .total_cmp(&self.score)
            .then(self.id.cmp(&other.id))
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::vector_blob;
    use super::*;

    #[test]
    fn dot_on_stored_bytes_equals_the_plain_dot_product() {
        for len in [1usize, 7, 8, 9, 64, 1027] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 13 % 17) as f32 - 8.0) / 9.0)
                .collect();
            let expected = crate::vector::dot(&a, &b);
            let got = dot_blob(&vector_blob(&a), &b);
            assert!(
                (expected - got).abs() <= 1e-4 * expected.abs().max(1.0),
                "{len}: {expected} vs {got}"
            );
        }
    }

    #[test]
    fn the_heap_keeps_the_best_scores() {
        let mut heap = BinaryHeap::new();
        for (id, score) in [(1, 0.5f32), (2, 0.9), (3, 0.1), (4, 0.7)] {
            heap.push(Scored { score, id });
            if heap.len() > 2 {
                heap.pop();
            }
        }
        let ids: Vec<i64> = heap.into_sorted_vec().iter().map(|s| s.id).collect();
        assert_eq!(ids, [2, 4]);
    }

    #[test]
    fn fusion_sums_reciprocal_ranks() {
        // 7 is 2nd and 1st: 1/62 + 1/61; 5 is 1st in one list only: 1/61; 9 is 3rd and 2nd.
        let fused = rrf(&[&[5, 7, 9], &[7, 9, 11]], 60.0);
        let ids: Vec<i64> = fused.iter().map(|f| f.0).collect();
        assert_eq!(ids, [7, 9, 5, 11]);
        assert!((fused[0].1 - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-7);
        assert!((fused[2].1 - 1.0 / 61.0).abs() < 1e-7);
        assert!((fused[3].1 - 1.0 / 63.0).abs() < 1e-7);
    }

    #[test]
    fn fusion_breaks_ties_by_first_appearance_and_k_flattens_ranks() {
        // 1 and 2 each top one list: equal scores, the first list's winner first.
        let fused = rrf(&[&[1, 3], &[2, 4]], 60.0);
        assert_eq!(fused[0].0, 1);
        assert_eq!(fused[1].0, 2);
        assert_eq!(fused[0].1, fused[1].1);
        // With a small k, one first place beats two middling places; with k = 60 it does not.
        let lists: [&[i64]; 2] = [&[1, 2, 3, 4, 5, 9], &[6, 7, 8, 10, 11, 9]];
        assert_eq!(rrf(&lists, 1.0)[0].0, 1);
        assert_eq!(rrf(&lists, 60.0)[0].0, 9);
        assert!(rrf(&[], 60.0).is_empty());
    }

    #[test]
    fn context_reads_the_lines_around_a_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.txt");
        std::fs::write(&file, "1\n2\n3\n4\n5\n6\n").unwrap();
        assert_eq!(
            context(&file, 3, 4, 1),
            (Some("2\n".into()), Some("5\n".into()))
        );
        assert_eq!(
            context(&file, 1, 6, 3),
            (None, None),
            "nothing before line 1 or after the last"
        );
        assert_eq!(context(&file, 2, 2, 9).0, Some("1\n".into()));
        assert_eq!(context(&dir.path().join("gone"), 1, 1, 2), (None, None));
    }
}
