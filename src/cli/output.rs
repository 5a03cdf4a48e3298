//! Writing vectors: JSON, JSON Lines, raw float32 and NumPy `.npy`.

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

/// The output format of the embed command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON array of vectors, one vector per line.
    Json,
    /// One JSON object per input, in input order: {"index":i,"id":..,"embedding":[..]}.
    Jsonl,
    /// Raw little-endian float32, row after row (no header; rows have --dim or the model's
    /// dimensions).
    F32,
    /// A NumPy .npy file holding a float32 matrix of shape (inputs, dimensions).
    Npy,
}

impl OutputFormat {
    /// Whether the format is binary (and should not go to a terminal).
    pub fn is_binary(self) -> bool {
        matches!(self, OutputFormat::F32 | OutputFormat::Npy)
    }
}

/// One line of JSON Lines output, fields in this order.
#[derive(serde::Serialize)]
struct JsonlLine<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    embedding: &'a [f32],
}

/// Writes vectors as they arrive; `finish` closes the document.
pub struct VectorWriter<W: Write> {
    out: W,
    format: OutputFormat,
    count: usize,
    dims: usize,
    /// `.npy` needs the row count in its header, so its rows wait here until `finish`.
    npy_rows: Vec<u8>,
}

impl<W: Write> VectorWriter<W> {
    /// Starts a document of `dims`-wide vectors.
    pub fn new(out: W, format: OutputFormat, dims: usize) -> Self {
        Self {
            out,
            format,
            count: 0,
            dims,
            npy_rows: Vec::new(),
        }
    }

    /// Writes the next vector (its index is its position in the input).
    pub fn write(&mut self, vector: &[f32], id: Option<&Value>) -> Result<()> {
        debug_assert_eq!(vector.len(), self.dims);
        match self.format {
            OutputFormat::Json => {
                self.out
                    .write_all(if self.count == 0 { b"[\n" } else { b",\n" })?;
                serde_json::to_writer(&mut self.out, vector)?;
            }
            OutputFormat::Jsonl => {
                let line = JsonlLine {
                    index: self.count,
                    id,
                    embedding: vector,
                };
                serde_json::to_writer(&mut self.out, &line)?;
                self.out.write_all(b"\n")?;
            }
            OutputFormat::F32 => {
                for x in vector {
                    self.out.write_all(&x.to_le_bytes())?;
                }
            }
            OutputFormat::Npy => {
                for x in vector {
                    self.npy_rows.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
        self.count += 1;
        Ok(())
    }

    /// Ends the document and flushes.
    pub fn finish(mut self) -> Result<W> {
        match self.format {
            OutputFormat::Json if self.count == 0 => self.out.write_all(b"[]\n")?,
            OutputFormat::Json => self.out.write_all(b"\n]\n")?,
            OutputFormat::Npy => {
                self.out.write_all(&npy_header(self.count, self.dims))?;
                self.out.write_all(&self.npy_rows)?;
            }
            OutputFormat::Jsonl | OutputFormat::F32 => {}
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A NumPy format 1.0 header for a little-endian float32 C-order matrix.
fn npy_header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + header length (2) + dict + padding + '\n', a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let padding = unpadded.next_multiple_of(64) - unpadded;
    let header_len = (dict.len() + padding + 1) as u16;
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(format: OutputFormat, vectors: &[[f32; 2]], ids: &[Option<Value>]) -> Vec<u8> {
        let mut w = VectorWriter::new(Vec::new(), format, 2);
        for (v, id) in vectors.iter().zip(ids) {
            w.write(v, id.as_ref()).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn json_is_one_array() {
        let out = render(
            OutputFormat::Json,
            &[[1.0, 0.5], [0.0, -2.0]],
            &[None, None],
        );
        let parsed: Vec<Vec<f32>> = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, [[1.0, 0.5], [0.0, -2.0]]);
        assert_eq!(render(OutputFormat::Json, &[], &[]), b"[]\n");
    }

    #[test]
    fn jsonl_has_index_id_and_embedding() {
        let out = render(
            OutputFormat::Jsonl,
            &[[1.0, 0.5], [0.25, 0.0]],
            &[Some(Value::from("a")), None],
        );
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"{"index":0,"id":"a","embedding":[1.0,0.5]}"#);
        assert_eq!(lines[1], r#"{"index":1,"embedding":[0.25,0.0]}"#);
    }

    #[test]
    fn f32_is_raw_little_endian() {
        let out = render(OutputFormat::F32, &[[1.0, -1.0]], &[None]);
        assert_eq!(out, [0, 0, 0x80, 0x3f, 0, 0, 0x80, 0xbf]);
    }

    #[test]
    fn npy_header_is_aligned_and_describes_the_matrix() {
        let out = render(
            OutputFormat::Npy,
            &[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
            &[None, None, None],
        );
        assert_eq!(&out[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([out[8], out[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&out[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (3, 2)"), "{header}");
        assert!(header.ends_with('\n'));
        assert_eq!(out.len(), 10 + header_len + 3 * 2 * 4);
    }
}
