//! The reranker's output head: the "yes" and "no" rows of the LM head, read from the GGUF file.
//!
//! Qwen3-Reranker scores a pair by the two logits the LM head gives the tokens "yes" and "no"
//! at the prompt's last token. The LM head multiplies the final normed hidden state, which the
//! engine already captures, so two dot products here replace the whole 151669-wide head.
//! llama.cpp's converter stores the two rows as `cls.output.weight`; files converted without
//! that layout still hold them as rows of `output.weight`, or of the tied `token_embd.weight`.

use crate::gguf::{CLS_OUTPUT, GgufError, GgufFile, ModelInfo};

/// The two rows and where they came from.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    yes: Vec<f32>,
    no: Vec<f32>,
    source: String,
}

impl Head {
    /// Finds the rows: `cls.output.weight` (by its labels) when the file has it, else the rows
    /// of the tokens "yes" and "no" in `output.weight`, else in the tied `token_embd.weight`.
    pub fn read(file: &GgufFile, info: &ModelInfo) -> Result<Self, GgufError> {
        let refuse = |why: String| GgufError::NoRerankHead(why);
        let n_embd = u64::from(info.embedding_length);
        if file.tensor(CLS_OUTPUT).is_some() {
            let labels = info.classifier_labels(file)?.ok_or_else(|| {
                refuse(format!(
                    "its classifier head {CLS_OUTPUT} has no {}.classifier.output_labels saying \
                     which row is \"yes\" and which is \"no\"",
                    info.architecture
                ))
            })?;
            let row = |label: &str| {
                labels.iter().position(|l| l == label).ok_or_else(|| {
                    refuse(format!(
                        "its classifier head {CLS_OUTPUT} has the labels {labels:?}, not \"yes\" \
                         and \"no\": it is not a Qwen3-Reranker head"
                    ))
                })
            };
            let (yes, no) = (row("yes")?, row("no")?);
            return Self::from_rows(file, CLS_OUTPUT, [yes as u64, no as u64], n_embd)
                .map(|h| h.labelled(format!("{CLS_OUTPUT} (rows \"yes\" {yes}, \"no\" {no})")));
        }
        let yes = token_id(file, "yes")?;
        let no = token_id(file, "no")?;
        let matrix = ["output.weight", "token_embd.weight"]
            .into_iter()
            .find(|name| file.tensor(name).is_some())
            .ok_or_else(|| refuse("it has neither output.weight nor token_embd.weight".into()))?;
        Self::from_rows(file, matrix, [yes, no], n_embd)
            .map(|h| h.labelled(format!("{matrix} (tokens \"yes\" {yes}, \"no\" {no})")))
    }

    fn from_rows(
        file: &GgufFile,
        matrix: &str,
        rows: [u64; 2],
        n_embd: u64,
    ) -> Result<Self, GgufError> {
        let t = file.tensor(matrix).expect("checked by the caller");
        if t.dims.first() != Some(&n_embd) {
            return Err(GgufError::NoRerankHead(format!(
                "{matrix} has rows of {:?} values, not the hidden size {n_embd}",
                t.dims.first()
            )));
        }
        let mut read = file.dequantize_rows(matrix, &rows)?.into_iter();
        let (yes, no) = (
            read.next().expect("two rows"),
            read.next().expect("two rows"),
        );
        if yes.iter().chain(&no).any(|x| !x.is_finite()) {
            return Err(GgufError::NoRerankHead(format!(
                "the \"yes\" and \"no\" rows of {matrix} hold values that are not finite"
            )));
        }
        Ok(Self {
            yes,
            no,
            source: String::new(),
        })
    }

    fn labelled(mut self, source: String) -> Self {
        self.source = source;
        self
    }

    /// Where the rows came from, for logs and reports.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The log-odds of "yes": logit("yes") - logit("no") for a final normed hidden state.
    /// Accumulated in f64, in a fixed order, so a pair's score never depends on anything but
    /// its hidden state.
    pub fn log_odds(&self, hidden: &[f32]) -> f64 {
        let dot = |row: &[f32]| {
            row.iter()
                .zip(hidden)
                .map(|(&w, &h)| f64::from(w) * f64::from(h))
                .sum::<f64>()
        };
        dot(&self.yes) - dot(&self.no)
    }
}

/// The id of a token spelled exactly `piece` in the file's vocabulary.
fn token_id(file: &GgufFile, piece: &str) -> Result<u64, GgufError> {
    let tokens = match file.get("tokenizer.ggml.tokens") {
        Some(crate::gguf::Value::Array(a)) => file.array_strings(a),
        _ => None,
    };
    tokens
        .and_then(|mut t| t.position(|t| t == piece.as_bytes()))
        .map(|i| i as u64)
        .ok_or_else(|| {
            GgufError::NoRerankHead(format!(
                "its vocabulary has no token {piece:?}, so the reranker's answer cannot be read"
            ))
        })
}

/// P("yes") from the log-odds: the softmax over ("no", "yes") of Qwen's rule, which is the
/// logistic function of their difference.
pub(crate) fn probability(log_odds: f64) -> f64 {
    if log_odds >= 0.0 {
        1.0 / (1.0 + (-log_odds).exp())
    } else {
        let e = log_odds.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a head fixture of tests/fixtures/heads (models/make_reranker_fixtures.py).
    fn read(name: &str) -> Result<Head, GgufError> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/heads")
            .join(format!("{name}.gguf"));
        let file = GgufFile::open(&path).unwrap();
        let info = ModelInfo::from_gguf(&file)?;
        Head::read(&file, &info)
    }

    /// In the fixtures, the right "yes" row is +127/128 and the right "no" row -127/128 in all
    /// 32 values, every other row 0.5: a hidden state of ones gives 63.5 from the right rows
    /// only.
    fn log_odds_of_ones(head: &Head) -> f64 {
        head.log_odds(&[1.0; 32])
    }

    #[test]
    fn an_untied_head_is_read_from_output_weight() {
        let head = read("untied").unwrap();
        assert_eq!(log_odds_of_ones(&head), 63.5);
        assert!(
            head.source().starts_with("output.weight"),
            "{}",
            head.source()
        );
    }

    #[test]
    fn a_tied_head_is_read_from_the_token_embeddings() {
        let head = read("tied").unwrap();
        assert_eq!(log_odds_of_ones(&head), 63.5);
        assert_eq!(
            head.source(),
            "token_embd.weight (tokens \"yes\" 2, \"no\" 1)"
        );
    }

    #[test]
    fn the_converter_head_is_read_by_its_labels() {
        let head = read("labels_reversed").unwrap();
        assert_eq!(
            log_odds_of_ones(&head),
            63.5,
            "row 1 is \"yes\" by its label"
        );
        assert!(head.source().starts_with("cls.output.weight"));
    }

    #[test]
    fn files_without_the_rows_are_refused_saying_why() {
        let err = read("foreign_labels").err().unwrap().to_string();
        assert!(err.contains("not \"yes\" and \"no\""), "{err}");
        let err = read("no_yes_token").err().unwrap().to_string();
        assert!(err.contains("no token \"yes\""), "{err}");
    }

    #[test]
    fn probability_is_the_two_way_softmax() {
        assert_eq!(probability(0.0), 0.5);
        let (yes, no) = (1.7f64, -0.4f64);
        let softmax = yes.exp() / (yes.exp() + no.exp());
        assert!((probability(yes - no) - softmax).abs() < 1e-15);
        assert_eq!(probability(-800.0), 0.0, "no NaN from overflow");
        assert_eq!(probability(800.0), 1.0);
        assert!(probability(-30.0) > 0.0 && probability(-30.0) < 1e-12);
    }
}
