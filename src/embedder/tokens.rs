//! The model's own tokens, for people who look at them: each token's id, its text and where
//! it lies in the prompt (TEI's `/tokenize`), and ids back to text (`/decode`).

use super::Embedder;
use crate::error::{Error, Result};
use crate::prompt::Instruction;

/// One token of a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Its id in the vocabulary.
    pub id: u32,
    /// Its text: the prompt's bytes it covers (a control token's name, such as
    /// `<|endoftext|>`, for a control token). A byte-level piece may hold part of a UTF-8
    /// character: see [`Token::text`].
    pub bytes: Vec<u8>,
    /// Whether it is a control token, which text never produces (the end-of-text token).
    pub special: bool,
    /// The byte range it covers in the prompt ([`Tokenized::prompt`]); `None` for a control
    /// token.
    pub offsets: Option<(usize, usize)>,
}

impl Token {
    /// Its text; a piece that holds part of a UTF-8 character shows U+FFFD for that part.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// A prompt and its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// The exact prompt the model sees: the instruction's format applied, NFC-normalised.
    pub prompt: String,
    /// Its tokens, `<|endoftext|>` last when asked for.
    pub tokens: Vec<Token>,
}

impl Embedder {
    /// The most tokens an input may have by default (`EmbedderOptions::with_max_tokens`),
    /// instruction and end-of-text token included.
    pub fn max_tokens(&self) -> usize {
        self.inner.default_max_tokens
    }

    /// The tokens of `text` as embedded with `instruction`: the ids of
    /// [`token_ids`](Self::token_ids), each with its text and its byte offsets in the prompt;
    /// `with_end_of_text` adds the end-of-text token every input ends with. No truncation.
    pub fn tokens(
        &self,
        text: &str,
        instruction: &Instruction,
        with_end_of_text: bool,
    ) -> Result<Tokenized> {
        let prompt = instruction.format(text).into_owned();
        let mut ids = self.token_ids(text, instruction)?;
        if !with_end_of_text {
            ids.pop();
        }
        let model = &self.inner.model;
        let mut at = 0;
        let mut tokens = Vec::with_capacity(ids.len());
        for id in ids {
            let raw = id as i32;
            let bytes = model
                .token_piece(raw)
                .ok_or_else(|| self.invalid_token(0, id))?;
            let special = model.is_control(raw);
            let offsets = (!special).then(|| {
                let span = (at, at + bytes.len());
                at += bytes.len();
                span
            });
            tokens.push(Token {
                id,
                bytes,
                special,
                offsets,
            });
        }
        Ok(Tokenized { prompt, tokens })
    }

    /// The text of token ids: their pieces joined (a byte sequence that is not UTF-8 shows
    /// U+FFFD), without control tokens when `skip_special`. An id outside the vocabulary is an
    /// error.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let model = &self.inner.model;
        let mut bytes = Vec::new();
        for (index, &id) in ids.iter().enumerate() {
            let piece = i32::try_from(id)
                .ok()
                .filter(|&raw| !(skip_special && model.is_control(raw)))
                .map(|raw| model.token_piece(raw));
            match piece {
                // A control token skipped.
                None if i32::try_from(id).is_ok() => {}
                Some(Some(piece)) => bytes.extend(piece),
                _ => return Err(self.invalid_token(index, id)),
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn invalid_token(&self, index: usize, id: u32) -> Error {
        Error::InvalidToken {
            index,
            token: i64::from(id),
            vocab_size: self.inner.model.n_vocab() as u64,
        }
    }
}
