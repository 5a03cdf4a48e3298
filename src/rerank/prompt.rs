//! Qwen3-Reranker's prompt, tokenized the way Qwen's reference code does it, and cut to the
//! token limit by shortening the document only.
//!
//! Qwen's rule (QwenLM/Qwen3-Reranker): the token ids of a fixed prefix (a system message and
//! the opening of the user turn), then the tokens of
//! `<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}`, then the ids of a
//! fixed suffix (the assistant turn with an empty `<think>` block). No `<|endoftext|>`: the
//! answer is read at the suffix's last token.

use crate::embedder::Truncation;
use crate::engine::Model;
use crate::error::{Error, Result};
use crate::prompt::nfc;

/// The system message Qwen3-Reranker was trained with.
pub const SYSTEM_PROMPT: &str = "Judge whether the Document meets the requirements based on the \
                                 Query and the Instruct provided. Note that the answer can only \
                                 be \"yes\" or \"no\".";

/// Everything before the pair.
fn prefix() -> String {
    format!("<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
}

/// Everything after the pair.
const SUFFIX: &str = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";

/// The text between prefix and suffix, NFC-normalised as the reference tokenizer does.
pub fn pair_text(instruction: &str, query: &str, document: &str) -> String {
    nfc(&format!(
        "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
    ))
    .into_owned()
}

/// The pair text up to the document (without the space before it). Byte-level BPE splits the
/// text before that space (`:` ends a punctuation run, and the space starts the document's
/// first piece), so its tokens are exactly the first tokens of [`pair_text`]'s.
fn head_text(instruction: &str, query: &str) -> String {
    nfc(&format!(
        "<Instruct>: {instruction}\n<Query>: {query}\n<Document>:"
    ))
    .into_owned()
}

/// A pair's tokens, ready to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PairTokens {
    pub ids: Vec<i32>,
    pub truncated: bool,
}

/// The fixed prefix and suffix, tokenized once per model.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    prefix: Vec<i32>,
    suffix: Vec<i32>,
}

impl Template {
    /// Tokenizes the fixed parts, parsing their special tokens.
    pub fn new(model: &Model) -> Result<Self> {
        let tokenize = |text: &str| {
            model
                .tokenize_template(text)
                .ok_or_else(|| Error::Compute("cannot tokenize the reranker prompt".into()))
        };
        Ok(Self {
            prefix: tokenize(&prefix())?,
            suffix: tokenize(SUFFIX)?,
        })
    }

    /// Tokens of the prompt without the pair text.
    pub fn overhead(&self) -> usize {
        self.prefix.len() + self.suffix.len()
    }

    /// The tokens of one pair, at most `max` of them: a document that does not fit is cut
    /// (its end for [`Truncation::End`], its start for [`Truncation::Start`]) and never the
    /// query, which must fit with the instruction. `index` names the pair in errors.
    pub fn pair(
        &self,
        model: &Model,
        (instruction, query, document): (&str, &str, &str),
        max: usize,
        truncation: Truncation,
        index: usize,
    ) -> Result<PairTokens> {
        let text = pair_text(instruction, query, document);
        let body = tokenize_user(model, &text, index)?;
        let total = self.overhead() + body.len();
        if total <= max {
            return Ok(PairTokens {
                ids: self.wrap(&body),
                truncated: false,
            });
        }
        if truncation == Truncation::Error {
            return Err(Error::TooLong {
                index,
                tokens: total,
                max,
            });
        }
        let head = tokenize_user(model, &head_text(instruction, query), index)?;
        let fixed = self.overhead() + head.len();
        if fixed >= max {
            return Err(Error::QueryTooLong { tokens: fixed, max });
        }
        if !body.starts_with(&head) {
            // The split argued at `head_text` failed: cutting here could change the query's
            // tokens, so refuse rather than score a different text.
            return Err(Error::Compute(format!(
                "input {index}: cannot find where the document starts in the reranker prompt's \
                 tokens"
            )));
        }
        let room = max - fixed;
        let document = &body[head.len()..];
        let kept = match truncation {
            Truncation::Start => &document[document.len() - room..],
            _ => &document[..room],
        };
        let mut cut = head;
        cut.extend_from_slice(kept);
        Ok(PairTokens {
            ids: self.wrap(&cut),
            truncated: true,
        })
    }

    fn wrap(&self, body: &[i32]) -> Vec<i32> {
        let mut ids = Vec::with_capacity(self.overhead() + body.len());
        ids.extend_from_slice(&self.prefix);
        ids.extend_from_slice(body);
        ids.extend_from_slice(&self.suffix);
        ids
    }
}

/// Tokenizes user text without parsing special tokens.
fn tokenize_user(model: &Model, text: &str, index: usize) -> Result<Vec<i32>> {
    model.tokenize(text).ok_or(Error::InputTooLarge {
        index,
        bytes: text.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_text_is_byte_exact_and_normalised() {
        assert_eq!(
            pair_text("Find it", "cafe\u{301}?", "doc"),
            "<Instruct>: Find it\n<Query>: caf\u{e9}?\n<Document>: doc"
        );
        let head = head_text("Find it", "q");
        assert!(pair_text("Find it", "q", "anything").starts_with(&head));
    }

    #[test]
    fn prefix_and_suffix_are_qwens() {
        assert_eq!(
            prefix(),
            "<|im_start|>system\nJudge whether the Document meets the requirements based on the \
             Query and the Instruct provided. Note that the answer can only be \"yes\" or \
             \"no\".<|im_end|>\n<|im_start|>user\n"
        );
        assert_eq!(
            SUFFIX,
            "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        );
    }
}
