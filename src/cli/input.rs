//! Reading texts to embed: one per line, or JSON Lines with a `text` field, streamed.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::UsageError;

/// Texts read from `--input` or stdin, whatever the source.
pub type TextReader = Reader<Box<dyn BufRead>>;

/// Opens `--input` (a file, or stdin for `-` or none) in `format`, or else the format its
/// extension says (`.jsonl`). Returns the reader and the file's size when known. `what` names
/// the inputs in the error for a terminal on stdin ("texts", "documents").
pub fn open(
    path: Option<&Path>,
    format: Option<InputFormat>,
    what: &str,
) -> Result<(TextReader, Option<u64>)> {
    let path = path.unwrap_or(Path::new("-"));
    let format = format.unwrap_or(
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"))
        {
            InputFormat::Jsonl
        } else {
            InputFormat::Lines
        },
    );
    let (input, total_bytes): (Box<dyn BufRead>, _) = if path == Path::new("-") {
        if io::stdin().is_terminal() {
            return Err(UsageError(format!(
                "no input: give {what} as arguments, pipe them on stdin, or use --input FILE"
            ))
            .into());
        }
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(path)
            .with_context(|| format!("cannot open the input file {}", path.display()))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 16, file)), size)
    };
    Ok((Reader::new(input, format), total_bytes))
}

/// How input lines are interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// One text per line (a trailing `\r` is dropped); an empty line is an empty text.
    Lines,
    /// One JSON object per line with a string field `text` and an optional `id` echoed back;
    /// blank lines are skipped.
    Jsonl,
}

/// One text to embed and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The text.
    pub text: String,
    /// The `id` field of a JSON Lines record, echoed in the output.
    pub id: Option<Value>,
}

/// A streaming reader of records.
pub struct Reader<R> {
    input: R,
    format: InputFormat,
    line_no: usize,
    buf: Vec<u8>,
    /// Bytes consumed so far, for progress reporting.
    pub bytes_read: u64,
}

impl<R: BufRead> Reader<R> {
    /// Reads `input` in `format`.
    pub fn new(input: R, format: InputFormat) -> Self {
        Self {
            input,
            format,
            line_no: 0,
            buf: Vec::new(),
            bytes_read: 0,
        }
    }

    /// Reads up to `max` records; fewer (or none) at the end of the input.
    pub fn next_chunk(&mut self, max: usize) -> Result<Vec<Record>> {
        let mut records = Vec::new();
        while records.len() < max {
            match self.next_record()? {
                Some(r) => records.push(r),
                None => break,
            }
        }
        Ok(records)
    }

    fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            self.buf.clear();
            let n = self
                .input
                .read_until(b'\n', &mut self.buf)
                .context("cannot read the input")?;
            if n == 0 {
                return Ok(None);
            }
            self.bytes_read += n as u64;
            self.line_no += 1;
            let line = trim_line_end(&self.buf);
            let text = std::str::from_utf8(line).map_err(|e| {
                anyhow::anyhow!(
                    "input line {} is not valid UTF-8 (invalid byte at column {}); convert the \
                     file to UTF-8 first",
                    self.line_no,
                    e.valid_up_to() + 1
                )
            })?;
            match self.format {
                InputFormat::Lines => {
                    return Ok(Some(Record {
                        text: text.to_string(),
                        id: None,
                    }));
                }
                InputFormat::Jsonl if text.trim().is_empty() => continue,
                InputFormat::Jsonl => return parse_jsonl(text, self.line_no).map(Some),
            }
        }
    }
}

/// Drops the line terminator (`\n` or `\r\n`).
fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn parse_jsonl(line: &str, line_no: usize) -> Result<Record> {
    let value: Value = serde_json::from_str(line)
        .with_context(|| format!("input line {line_no} is not valid JSON"))?;
    let Value::Object(mut object) = value else {
        bail!("input line {line_no}: expected a JSON object with a \"text\" field");
    };
    let text = match object.remove("text") {
        Some(Value::String(text)) => text,
        Some(other) => bail!(
            "input line {line_no}: the \"text\" field must be a string, not {}",
            json_type(&other)
        ),
        None => bail!("input line {line_no}: the object has no \"text\" field"),
    };
    Ok(Record {
        text,
        id: object.remove("id"),
    })
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], format: InputFormat) -> Result<Vec<Record>> {
        Reader::new(input, format).next_chunk(usize::MAX)
    }

    fn texts(records: &[Record]) -> Vec<&str> {
        records.iter().map(|r| r.text.as_str()).collect()
    }

    #[test]
    fn lines_keep_empty_texts_and_drop_terminators() {
        let r = read_all(b"a\r\n\nb\n", InputFormat::Lines).unwrap();
        assert_eq!(texts(&r), ["a", "", "b"]);
        let r = read_all(b"no newline at end", InputFormat::Lines).unwrap();
        assert_eq!(texts(&r), ["no newline at end"]);
        assert!(read_all(b"", InputFormat::Lines).unwrap().is_empty());
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let err = read_all(b"ok\nfine\nbad \xff byte\n", InputFormat::Lines).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("input line 3 is not valid UTF-8"), "{msg}");
        assert!(msg.contains("column 5"), "{msg}");
    }

    #[test]
    fn jsonl_reads_text_and_id_and_skips_blank_lines() {
        let input = b"{\"text\":\"a\",\"id\":7}\n\n  \n{\"id\":\"x\",\"text\":\"\"}\n";
        let r = read_all(input, InputFormat::Jsonl).unwrap();
        assert_eq!(texts(&r), ["a", ""]);
        assert_eq!(r[0].id, Some(Value::from(7)));
        assert_eq!(r[1].id, Some(Value::from("x")));
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let cases: [(&[u8], &str); 4] = [
            (
                b"{\"text\":\"a\"}\n{oops\n",
                "input line 2 is not valid JSON",
            ),
            (b"[1,2]\n", "expected a JSON object"),
            (b"{\"text\":5}\n", "must be a string, not a number"),
            (b"{\"body\":\"a\"}\n", "no \"text\" field"),
        ];
        for (input, expected) in cases {
            let err = read_all(input, InputFormat::Jsonl).unwrap_err();
            assert!(format!("{err:#}").contains(expected), "{err:#}");
        }
    }

    #[test]
    fn chunks_split_the_stream() {
        let mut reader = Reader::new(&b"1\n2\n3\n"[..], InputFormat::Lines);
        assert_eq!(texts(&reader.next_chunk(2).unwrap()), ["1", "2"]);
        assert_eq!(texts(&reader.next_chunk(2).unwrap()), ["3"]);
        assert!(reader.next_chunk(2).unwrap().is_empty());
        assert_eq!(reader.bytes_read, 6);
    }
}
