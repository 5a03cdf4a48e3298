//! Lossless repacking of F16 weights as BF16.
//!
//! Qwen3-Embedding was trained and released in bfloat16, and its F16 GGUF holds those same
//! values: a bfloat16 value (8 significant bits) inside f16's range is exactly an f16 value, and
//! f16's subnormals keep at most 10 bits. Written back as BF16 the weights are bit-for-bit the
//! same numbers, and ggml runs its BF16 kernels (AVX512-BF16 `vdpbf16ps`, two products per
//! lane) instead of widening F16 to F32 for every multiply. What does change is the rounding of
//! the activations: ggml converts them to the weight type before each matrix product, bfloat16
//! (8 significant bits) instead of f16 (11).
//!
//! F16 and BF16 both take two bytes per element, so the copy has the same layout as the
//! original: the header with the tensor types (and `general.file_type`) patched, and every F16
//! tensor converted in place. A file with any F16 value that is not a bfloat16 value (one
//! converted from float32 weights, say) is not repacked.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{GgufError, GgufFile, Value};

/// ggml's tensor type tags.
const F16: u32 = 1;
const BF16: u32 = 30;
/// llama.cpp's `general.file_type` values.
const MOSTLY_F16: u32 = 1;
const MOSTLY_BF16: u32 = 32;

/// What [`write_bf16_copy`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repack {
    /// The copy was written: this many tensors were converted.
    Written {
        /// F16 tensors converted to BF16.
        tensors: usize,
    },
    /// The file has no F16 tensor: nothing to do.
    NoF16Tensors,
    /// A weight is not a bfloat16 value, so BF16 would change it: no copy was written.
    NotBfloat16 {
        /// The first tensor found with such a value.
        tensor: String,
    },
}

/// Converts f16 bits to the bfloat16 bits of the same number, or `None` when bfloat16 cannot
/// hold it exactly (more than 8 significant bits, or a NaN payload it would lose).
pub fn f16_to_bf16_exact(h: u16) -> Option<u16> {
    let sign = h & 0x8000;
    let exponent = (h >> 10) & 0x1f;
    let mantissa = h & 0x3ff;
    match exponent {
        // Infinities and NaNs: bfloat16 keeps the top 7 mantissa bits.
        0x1f => (mantissa & 0x7 == 0).then_some(sign | 0x7f80 | (mantissa >> 3)),
        // Zero and subnormals (mantissa * 2^-24): normal numbers in bfloat16.
        0 if mantissa == 0 => Some(sign),
        0 => {
            let bits = 16 - mantissa.leading_zeros() as u16; // significant bits, 1..=10
            if bits > 8 && mantissa & ((1 << (bits - 8)) - 1) != 0 {
                return None;
            }
            // The value is 1.f * 2^(bits - 25); bfloat16's exponent bias is 127.
            let biased = bits + 102;
            let fraction = if bits > 8 {
                mantissa >> (bits - 8)
            } else {
                mantissa << (8 - bits)
            } & 0x7f;
            Some(sign | (biased << 7) | fraction)
        }
        // Normal numbers: exponent bias 15 becomes 127, 10 mantissa bits become 7.
        _ => (mantissa & 0x7 == 0).then_some(sign | ((exponent + 112) << 7) | (mantissa >> 3)),
    }
}

/// Writes a copy of `source` with every F16 tensor stored as BF16, at `dest`, when that loses
/// nothing. The copy is written beside `dest` and renamed into place once complete and synced,
/// so `dest` never holds a partial file; nothing is left behind when the weights do not allow
/// the conversion or writing fails.
pub fn write_bf16_copy(source: &GgufFile, dest: &Path) -> Result<Repack, GgufError> {
    let f16_tensors = source
        .tensors()
        .iter()
        .filter(|t| t.tensor_type.tag == F16)
        .count();
    if f16_tensors == 0 {
        return Ok(Repack::NoF16Tensors);
    }
    Ok(
        match write_atomically(dest, |partial| write_converted(source, partial))? {
            None => Repack::Written {
                tensors: f16_tensors,
            },
            Some(tensor) => Repack::NotBfloat16 { tensor },
        },
    )
}

/// Writes a file at `dest` through `write`, which writes (and syncs) it at the path it is given
/// and returns `Some(reason)` when it gave up. The file is written beside `dest` and renamed
/// into place once `write` succeeded, so `dest` never holds a partial file; nothing is left
/// behind when `write` gives up or fails.
pub(super) fn write_atomically(
    dest: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<Option<String>>,
) -> Result<Option<String>, GgufError> {
    let partial = partial_path(dest);
    let result = write(&partial).and_then(|outcome| {
        if outcome.is_none() {
            std::fs::rename(&partial, dest)?;
        }
        Ok(outcome)
    });
    if !matches!(result, Ok(None)) {
        let _ = std::fs::remove_file(&partial);
    }
    Ok(result?)
}

/// A name beside `dest` that no other process uses.
fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    dest.with_file_name(name)
}

/// Writes the converted file to `path`; returns the first tensor that cannot be converted.
fn write_converted(source: &GgufFile, path: &Path) -> std::io::Result<Option<String>> {
    let bytes: &[u8] = &source.map;
    let mut out = BufWriter::with_capacity(8 << 20, File::create(path)?);
    out.write_all(&patched_header(source))?;

    let mut tensors: Vec<_> = source.tensors().iter().collect();
    tensors.sort_by_key(|t| t.offset);
    let mut cursor = source.data_offset() as usize;
    for t in tensors {
        let start = (source.data_offset() + t.offset) as usize;
        let end = start + t.size as usize;
        out.write_all(&bytes[cursor..start])?; // alignment padding
        if t.tensor_type.tag == F16 {
            if !write_as_bf16(&bytes[start..end], &mut out)? {
                return Ok(Some(t.name.clone()));
            }
        } else {
            out.write_all(&bytes[start..end])?;
        }
        cursor = end;
    }
    out.write_all(&bytes[cursor..])?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(None)
}

/// The header (metadata and tensor table) with F16 tensors retyped as BF16.
fn patched_header(source: &GgufFile) -> Vec<u8> {
    let mut header = source.map[..source.data_offset() as usize].to_vec();
    for (t, &at) in source.tensors().iter().zip(&source.type_tag_offsets) {
        if t.tensor_type.tag == F16 {
            header[at..at + 4].copy_from_slice(&BF16.to_le_bytes());
        }
    }
    if let Some((i, _)) = source
        .metadata
        .iter()
        .enumerate()
        .find(|(_, (k, v))| k == "general.file_type" && *v == Value::U32(MOSTLY_F16))
    {
        let at = source.value_offsets[i];
        header[at..at + 4].copy_from_slice(&MOSTLY_BF16.to_le_bytes());
    }
    header
}

/// Converts one F16 tensor's bytes, a chunk at a time; `false` when a value is not exact.
fn write_as_bf16(data: &[u8], out: &mut impl Write) -> std::io::Result<bool> {
    const CHUNK: usize = 1 << 20;
    let mut converted = Vec::with_capacity(CHUNK);
    for chunk in data.chunks(CHUNK) {
        converted.clear();
        for pair in chunk.chunks_exact(2) {
            let Some(b) = f16_to_bf16_exact(u16::from_le_bytes([pair[0], pair[1]])) else {
                return Ok(false);
            };
            converted.extend_from_slice(&b.to_le_bytes());
        }
        out.write_all(&converted)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number an f16 bit pattern stands for, computed arithmetically.
    fn f16_value(h: u16) -> f64 {
        let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
        let exponent = i32::from((h >> 10) & 0x1f);
        let mantissa = f64::from(h & 0x3ff);
        match exponent {
            0 => sign * mantissa * 2f64.powi(-24),
            0x1f if mantissa == 0.0 => sign * f64::INFINITY,
            0x1f => f64::NAN,
            e => sign * (1.0 + mantissa / 1024.0) * 2f64.powi(e - 15),
        }
    }

    #[test]
    fn every_f16_converts_exactly_or_not_at_all() {
        let mut exact = 0;
        for h in 0..=u16::MAX {
            let value = f16_value(h);
            let got = f16_to_bf16_exact(h);
            if value.is_nan() {
                // NaN stays NaN (with its sign and top payload bits) when it converts.
                if let Some(b) = got {
                    assert_eq!(b & 0x7f80, 0x7f80, "{h:#06x}");
                    assert_ne!(b & 0x7f, 0, "{h:#06x} became infinity");
                    assert_eq!(b & 0x8000, h & 0x8000);
                }
                continue;
            }
            // bfloat16 is the top half of a float32: it holds the value iff the low half is 0.
            let bits = (value as f32).to_bits();
            let expected = (bits & 0xffff == 0).then_some((bits >> 16) as u16);
            assert_eq!(got, expected, "f16 {h:#06x} = {value:e}");
            exact += usize::from(got.is_some());
        }
        // Normal numbers with 3 zero low bits, zeros, subnormals with at most 8 significant
        // bits, infinities: a bit over an eighth of all patterns.
        assert!(exact > 8000 && exact < 9000, "{exact}");
    }

    #[test]
    fn bfloat16_values_survive_the_round_trip_through_f16() {
        // What the F16 file of a bfloat16 checkpoint holds converts back to the same bits.
        for b in [
            0x3f80u16, 0xbf80, 0x3c23, 0x0000, 0x8000, 0x3800, 0x4770, 0x3380, 0x7f80,
        ] {
            let value = f32::from_bits(u32::from(b) << 16);
            let h = f16_bits(value);
            assert_eq!(f16_to_bf16_exact(h), Some(b), "bf16 {b:#06x} = {value:e}");
        }
    }

    /// f16 bits of a float32 that f16 holds exactly (normal range), for the test above.
    fn f16_bits(v: f32) -> u16 {
        (0..=u16::MAX)
            .find(|&h| (f16_value(h) as f32).to_bits() == v.to_bits())
            .expect("exactly representable")
    }
}
