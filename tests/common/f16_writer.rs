//! Writes F16 versions of the committed F32 fixture, for the BF16 tests: the real F16 file is
//! 1.2 GB and the tiny one is not committed.

use std::io::Write;
use std::path::Path;

use gguf_embed::gguf::GgufFile;
use half::{bf16, f16};

/// How the F32 matrices become F16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Round to bfloat16 first, as the F16 file of a bfloat16 checkpoint (Qwen3-Embedding's)
    /// holds them: every value is then a bfloat16 value.
    ViaBfloat16,
    /// Straight to f16, as from a float32 checkpoint: most values are not bfloat16 values.
    Direct,
}

/// Writes `src` (an all-F32 GGUF) to `dst` with every matrix as F16 and `general.file_type`
/// set to MOSTLY_F16; vectors (the norms) stay F32, as llama.cpp's converter leaves them.
pub fn write_f16_copy(src: &Path, dst: &Path, rounding: Rounding) {
    let file = GgufFile::open(src).unwrap();
    let bytes = std::fs::read(src).unwrap();
    let alignment = 32u64;
    assert!(
        file.get("general.alignment").is_none(),
        "fixture uses the default alignment"
    );

    let mut out = Vec::new();
    out.extend_from_slice(&bytes[..24]); // magic, version, tensor count, metadata count
    let mut metadata = bytes[24..file.tensor_table_offset() as usize].to_vec();
    set_file_type_f16(&mut metadata);
    out.extend_from_slice(&metadata);

    let mut data = Vec::new();
    for t in file.tensors() {
        assert_eq!(t.tensor_type.name, "f32", "{} is not F32", t.name);
        let start = (file.data_offset() + t.offset) as usize;
        let floats = bytes[start..start + t.size as usize]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()));
        data.resize(data.len().next_multiple_of(alignment as usize), 0u8);
        let offset = data.len() as u64;
        let matrix = t.dims.len() == 2;
        if matrix {
            for x in floats {
                let x = match rounding {
                    Rounding::ViaBfloat16 => bf16::from_f32(x).to_f32(),
                    Rounding::Direct => x,
                };
                data.extend_from_slice(&f16::from_f32(x).to_le_bytes());
            }
        } else {
            for x in floats {
                data.extend_from_slice(&x.to_le_bytes());
            }
        }
        // The tensor table entry: name, dimensions, type, offset.
        out.extend_from_slice(&(t.name.len() as u64).to_le_bytes());
        out.extend_from_slice(t.name.as_bytes());
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&u32::from(if matrix { 1u8 } else { 0 }).to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
    }
    out.resize(out.len().next_multiple_of(alignment as usize), 0);
    out.extend_from_slice(&data);
    std::fs::File::create(dst).unwrap().write_all(&out).unwrap();
}

/// Sets the u32 value of `general.file_type` (ALL_F32 = 0 in the fixture) to MOSTLY_F16 (1).
fn set_file_type_f16(metadata: &mut [u8]) {
    let key = b"general.file_type";
    let at = metadata
        .windows(key.len())
        .position(|w| w == key)
        .expect("the fixture has general.file_type");
    let type_tag = at + key.len();
    assert_eq!(
        metadata[type_tag..type_tag + 4],
        4u32.to_le_bytes(),
        "a u32 value"
    );
    metadata[type_tag + 4..type_tag + 8].copy_from_slice(&1u32.to_le_bytes());
}

/// Writes `src` to `dst` with the 2-D tensors that `select` picks (by name) stored as F16,
/// converted from F32 or dequantised from Q8_0 (then rounded to f16); every other tensor, and
/// the metadata (`general.file_type` included), stays as it is. From the Q8_0 fixture this
/// makes a mixed file, as quantizers write when they keep some matrices in F16.
pub fn write_with_f16_matrices(src: &Path, dst: &Path, select: impl Fn(&str) -> bool) {
    let file = GgufFile::open(src).unwrap();
    let bytes = std::fs::read(src).unwrap();
    let alignment = 32u64;
    assert!(
        file.get("general.alignment").is_none(),
        "fixture uses the default alignment"
    );

    let mut out = bytes[..file.tensor_table_offset() as usize].to_vec();
    let mut data = Vec::new();
    for t in file.tensors() {
        let start = (file.data_offset() + t.offset) as usize;
        let raw = &bytes[start..start + t.size as usize];
        data.resize(data.len().next_multiple_of(alignment as usize), 0u8);
        let offset = data.len() as u64;
        let convert = t.dims.len() == 2 && select(&t.name);
        let tag = if convert {
            let floats: Vec<f32> = match t.tensor_type.name {
                "f32" => raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                "q8_0" => raw
                    .chunks_exact(34)
                    .flat_map(|block| {
                        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
                        block[2..].iter().map(move |&q| d * f32::from(q as i8))
                    })
                    .collect(),
                other => panic!("{} is {other}: only f32 and q8_0 convert", t.name),
            };
            for x in floats {
                data.extend_from_slice(&f16::from_f32(x).to_le_bytes());
            }
            1u32
        } else {
            data.extend_from_slice(raw);
            t.tensor_type.tag
        };
        out.extend_from_slice(&(t.name.len() as u64).to_le_bytes());
        out.extend_from_slice(t.name.as_bytes());
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
    }
    out.resize(out.len().next_multiple_of(alignment as usize), 0);
    out.extend_from_slice(&data);
    std::fs::File::create(dst).unwrap().write_all(&out).unwrap();
}
