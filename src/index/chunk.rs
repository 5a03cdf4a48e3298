//! Splitting a file into chunks that never cut a line and stay within a token budget: at
//! definitions for source code (`code`), by lines for everything else.

/// A run of whole lines of one file: a definition, part of one, or other lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The first line, counting from 1.
    pub start_line: usize,
    /// The last line (inclusive).
    pub end_line: usize,
    /// The lines, with their line breaks.
    pub text: String,
    /// The name of the definition the chunk holds, when the chunker knows it.
    pub symbol: Option<String>,
    /// What kind of definition that is (`fn`, `method`, `struct`, `class`, ...; the list is
    /// in the `code` module's docs).
    pub kind: Option<String>,
}

/// The text embedded for a chunk: its lines exactly, without the file's path. A chunk's
/// vector then depends on its text alone, so an unchanged chunk keeps its vector when its
/// file is edited elsewhere, moved or renamed; the path's words are found by the lexical
/// index instead (see `lexical`).
pub fn embedded_text(chunk: &Chunk) -> String {
    chunk.text.clone()
}

/// Chunks a file: at its definitions when it is source code in a language the code chunker
/// parses (see [`chunk_code`](super::chunk_code)), by lines with [`split`] otherwise.
pub fn chunk_file(
    path: &str,
    text: &str,
    budget: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<Chunk> {
    super::code::chunk_code(path, text, budget, count).unwrap_or_else(|| split(text, budget, count))
}

/// Splits `text` into chunks of whole lines that take at most `budget` tokens by `count`
/// (which counts the end-of-text token too). A single line longer than the budget becomes a
/// chunk of its own (the embedder truncates it; the stored text keeps the whole line). Chunks
/// of blank lines only are dropped.
///
/// Where a chunk ends depends on the text near its end, not on everything before it: once a
/// chunk holds half its budget, it ends at the first paragraph break (a line after a blank
/// line, or after a line that closes a top-level block), and only when none comes in time
/// does it end where the budget runs out. So a line added or removed in one place changes
/// that chunk (and at most the next), and the chunks after it keep their text and their
/// vectors, where packing every chunk full would shift every later boundary.
pub fn split(text: &str, budget: usize, count: &dyn Fn(&str) -> usize) -> Vec<Chunk> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let header = count("");
    let line_tokens: Vec<usize> = lines.iter().map(|l| count(l).saturating_sub(1)).collect();
    let min = budget / 2;
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        // Grow by the per-line estimate, then confirm with an exact count of the whole chunk
        // (tokens can merge across line breaks), dropping lines until it fits.
        let mut end = start;
        let mut estimate = header;
        while end < lines.len() && (end == start || estimate + line_tokens[end] <= budget) {
            if end > start && estimate >= min && is_break(&lines, end) {
                break;
            }
            estimate += line_tokens[end];
            end += 1;
        }
        while end > start + 1 && count(&lines[start..end].concat()) > budget {
            end -= 1;
        }
        let text = lines[start..end].concat();
        if !text.trim().is_empty() {
            chunks.push(Chunk {
                start_line: start + 1,
                end_line: end,
                text,
                symbol: None,
                kind: None,
            });
        }
        start = end;
    }
    chunks
}

/// Whether a chunk may start at line `i`: it is not blank and follows a blank line or a line
/// that closes a top-level block (`}`, `};`, `end`, `)` at the start of the line).
fn is_break(lines: &[&str], i: usize) -> bool {
    if i == 0 || lines[i].trim().is_empty() {
        return false;
    }
    let prev = lines[i - 1].trim_end();
    prev.trim().is_empty() || matches!(prev, "}" | "};" | "end" | ")" | ");" | "})" | "});")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per whitespace-separated word, plus one for the end-of-text token.
    fn words(s: &str) -> usize {
        s.split_whitespace().count() + 1
    }

    #[test]
    fn chunks_cover_every_line_once_and_fit_the_budget() {
        let text: String = (1..=40)
            .map(|i| format!("word{i} and more words here\n"))
            .collect();
        let chunks = split(&text, 30, &words);
        assert!(chunks.len() > 1);
        assert_eq!(chunks[0].start_line, 1);
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].end_line + 1, pair[1].start_line);
        }
        assert_eq!(chunks.last().unwrap().end_line, 40);
        for c in &chunks {
            assert!(words(&c.text) <= 30, "{c:?}");
            assert!(c.text.ends_with('\n'));
        }
        let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn an_added_line_changes_its_chunk_and_not_the_chunks_after_it() {
        // Paragraphs of 3-6 lines, separated by blank lines.
        let mut text = String::new();
        for p in 0..40 {
            for l in 0..(3 + p % 4) {
                text.push_str(&format!("item {p} line {l} with a few words\n"));
            }
            text.push('\n');
        }
        let before = split(&text, 60, &words);
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        let at = lines.len() / 3;
        lines.insert(at, "an added line\n");
        let after = split(&lines.concat(), 60, &words);
        let texts = |c: &[Chunk]| c.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
        let (old, new) = (texts(&before), texts(&after));
        let changed = new.iter().filter(|t| !old.contains(t)).count();
        assert!(changed <= 2, "{changed} of {} chunks changed", new.len());
        assert!(new.len() > 10);
        for c in &after {
            assert!(words(&c.text) <= 60);
        }
    }

    #[test]
    fn an_overlong_line_stays_whole_in_its_own_chunk() {
        let long = format!("{}\n", "x ".repeat(100));
        let text = format!("short\n{long}tail\n");
        let chunks = split(&text, 20, &words);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].text, long);
        assert_eq!((chunks[1].start_line, chunks[1].end_line), (2, 2));
    }

    #[test]
    fn blank_runs_are_dropped_and_a_final_line_without_newline_is_kept() {
        let chunks = split("a b c\n\n\n", 3, &words);
        assert_eq!(chunks.len(), 1, "{chunks:?}");
        assert_eq!((chunks[0].start_line, chunks[0].end_line), (1, 1));
        let chunks = split("a b\n\nc d", 4, &words);
        assert_eq!(chunks.last().unwrap().text, "c d");
        assert_eq!(chunks.last().unwrap().end_line, 3);
    }
}
