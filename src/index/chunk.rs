//! Splitting a file into chunks that never cut a line and stay within a token budget.

/// A run of whole lines of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The first line, counting from 1.
    pub start_line: usize,
    /// The last line (inclusive).
    pub end_line: usize,
    /// The lines, with their line breaks.
    pub text: String,
}

/// The text embedded for a chunk: its path on the first line, then its lines, so the path's
/// words (module and file names) count in the search.
pub fn embedded_text(path: &str, chunk: &str) -> String {
    format!("{path}\n{chunk}")
}

/// Splits `text` into chunks whose embedded text (see [`embedded_text`]) takes at most
/// `budget` tokens by `count`. A single line longer than the budget becomes a chunk of its own
/// (the embedder truncates it; the stored text keeps the whole line). Chunks of blank lines
/// only are dropped.
pub fn split(path: &str, text: &str, budget: usize, count: &dyn Fn(&str) -> usize) -> Vec<Chunk> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let header = count(&embedded_text(path, ""));
    let line_tokens: Vec<usize> = lines.iter().map(|l| count(l).saturating_sub(1)).collect();
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        // Grow by the per-line estimate, then confirm with an exact count of the whole chunk
        // (tokens can merge across line breaks), dropping lines until it fits.
        let mut end = start;
        let mut estimate = header;
        while end < lines.len() && (end == start || estimate + line_tokens[end] <= budget) {
            estimate += line_tokens[end];
            end += 1;
        }
        while end > start + 1 && count(&embedded_text(path, &lines[start..end].concat())) > budget {
            end -= 1;
        }
        let text = lines[start..end].concat();
        if !text.trim().is_empty() {
            chunks.push(Chunk {
                start_line: start + 1,
                end_line: end,
                text,
            });
        }
        start = end;
    }
    chunks
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
        let chunks = split("src/a.rs", &text, 30, &words);
        assert!(chunks.len() > 1);
        assert_eq!(chunks[0].start_line, 1);
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].end_line + 1, pair[1].start_line);
        }
        assert_eq!(chunks.last().unwrap().end_line, 40);
        for c in &chunks {
            assert!(words(&embedded_text("src/a.rs", &c.text)) <= 30, "{c:?}");
            assert!(c.text.ends_with('\n'));
        }
        let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn an_overlong_line_stays_whole_in_its_own_chunk() {
        let long = format!("{}\n", "x ".repeat(100));
        let text = format!("short\n{long}tail\n");
        let chunks = split("f", &text, 20, &words);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].text, long);
        assert_eq!((chunks[1].start_line, chunks[1].end_line), (2, 2));
    }

    #[test]
    fn blank_runs_are_dropped_and_a_final_line_without_newline_is_kept() {
        let chunks = split("f", "a b c\n\n\n", 4, &words);
        assert_eq!(chunks.len(), 1, "{chunks:?}");
        assert_eq!((chunks[0].start_line, chunks[0].end_line), (1, 1));
        let chunks = split("f", "a b\n\nc d", 4, &words);
        assert_eq!(chunks.last().unwrap().text, "c d");
        assert_eq!(chunks.last().unwrap().end_line, 3);
    }
}
