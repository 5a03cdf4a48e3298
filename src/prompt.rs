//! Prompt formatting: Qwen3-Embedding's task instructions and Unicode normalisation.
//!
//! Queries are embedded as `Instruct: {task}\nQuery:{query}` (no space after `Query:`);
//! documents are embedded as they are. The reference tokenizer normalises text to NFC and
//! llama.cpp does not, so every prompt is normalised here before tokenization.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// A task from Qwen's evaluation of Qwen3-Embedding, with the instruction it was trained with.
/// Instructions are English even for texts in other languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Task {
    /// Web-search retrieval: the default query task.
    WebSearch,
    /// Semantic textual similarity: use the instruction on both sides.
    Similarity,
    /// Bitext mining: find translations of a sentence.
    Bitext,
    /// Code search: a natural-language query against code.
    CodeSearch,
}

impl Task {
    /// Every task, in the order `--help` lists them.
    pub const ALL: [Task; 4] = [
        Task::WebSearch,
        Task::Similarity,
        Task::Bitext,
        Task::CodeSearch,
    ];

    /// The task's name on the command line and in APIs.
    pub fn name(self) -> &'static str {
        match self {
            Task::WebSearch => "web-search",
            Task::Similarity => "similarity",
            Task::Bitext => "bitext",
            Task::CodeSearch => "code-search",
        }
    }

    /// The instruction text the model was trained with for this task.
    pub fn instruction(self) -> &'static str {
        match self {
            Task::WebSearch => {
                "Given a web search query, retrieve relevant passages that answer the query"
            }
            Task::Similarity => "Retrieve semantically similar text",
            Task::Bitext => "Retrieve parallel sentences",
            Task::CodeSearch => {
                "Given a code search query, retrieve relevant code snippets that answer the query"
            }
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a task name that is not one of [`Task::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown task {0:?}; known tasks: web-search, similarity, bitext, code-search")]
pub struct UnknownTask(pub String);

impl FromStr for Task {
    type Err = UnknownTask;

    /// Parses a task name; `_` and `-` are interchangeable and case is ignored, and a few
    /// common aliases (`query`, `retrieval`, `sts`, `code`) are accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match name.as_str() {
            "web-search" | "websearch" | "retrieval" | "query" | "search" => Task::WebSearch,
            "similarity" | "sts" | "semantic-similarity" => Task::Similarity,
            "bitext" | "parallel" | "translation" => Task::Bitext,
            "code-search" | "code" | "codesearch" => Task::CodeSearch,
            _ => return Err(UnknownTask(s.to_string())),
        })
    }
}

/// Which side of retrieval a text is on: a document (no instruction) or a query with an
/// instruction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Instruction {
    /// Embed the text as it is (documents, passages, code).
    #[default]
    None,
    /// Embed as a query with one of Qwen's task instructions.
    Task(Task),
    /// Embed as a query with an instruction of your own (one English sentence that describes
    /// the task works best).
    Custom(String),
}

impl Instruction {
    /// A query with the default retrieval task.
    pub fn query() -> Self {
        Instruction::Task(Task::WebSearch)
    }

    /// The instruction text, if any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Instruction::None => None,
            Instruction::Task(task) => Some(task.instruction()),
            Instruction::Custom(text) => Some(text),
        }
    }

    /// The exact prompt the model sees for `text`, NFC-normalised.
    pub fn format<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.text() {
            None => nfc(text),
            Some(task) => Cow::Owned(nfc(&format!("Instruct: {task}\nQuery:{text}")).into_owned()),
        }
    }
}

impl From<String> for Instruction {
    fn from(text: String) -> Self {
        Instruction::Custom(text)
    }
}

impl From<&str> for Instruction {
    fn from(text: &str) -> Self {
        Instruction::Custom(text.to_string())
    }
}

impl From<Task> for Instruction {
    fn from(task: Task) -> Self {
        Instruction::Task(task)
    }
}

/// NFC-normalises text, borrowing it when it is already normalised (the common case).
pub fn nfc(text: &str) -> Cow<'_, str> {
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => Cow::Borrowed(text),
        _ => Cow::Owned(text.nfc().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_format_is_byte_exact() {
        let q = Instruction::query().format("what is rust?");
        assert_eq!(
            q,
            "Instruct: Given a web search query, retrieve relevant passages that answer the \
             query\nQuery:what is rust?"
        );
        let custom = Instruction::Custom("Find the function".into()).format("parse json");
        assert_eq!(custom, "Instruct: Find the function\nQuery:parse json");
    }

    #[test]
    fn documents_are_unchanged_but_normalised() {
        assert!(matches!(
            Instruction::None.format("plain"),
            Cow::Borrowed("plain")
        ));
        assert_eq!(Instruction::None.format("cafe\u{301}"), "caf\u{e9}");
        assert_eq!(
            Instruction::Task(Task::Similarity).format("cafe\u{301}"),
            "Instruct: Retrieve semantically similar text\nQuery:caf\u{e9}"
        );
    }

    #[test]
    fn task_names_round_trip_and_aliases_parse() {
        for task in Task::ALL {
            assert_eq!(task.name().parse::<Task>(), Ok(task));
        }
        assert_eq!("Code_Search".parse::<Task>(), Ok(Task::CodeSearch));
        assert_eq!("sts".parse::<Task>(), Ok(Task::Similarity));
        let err = "poetry".parse::<Task>().unwrap_err();
        assert!(err.to_string().contains("known tasks"), "{err}");
    }
}
