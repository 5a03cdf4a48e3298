//! Dequantisation of single rows, for the few weights read outside llama.cpp: the "yes" and
//! "no" rows of a reranker's output head (see [`crate::Reranker`]).
//!
//! The formats are ggml's (`ggml-quants.c`, `dequantize_row_*`); the arithmetic follows it
//! step by step in f32. Checked against llama.cpp's own Python implementation
//! (`gguf.quants.dequantize`) on random blocks of every type (`tests/dequant.rs`).

use super::TensorType;

/// Values per super-block of the k-quants.
const QK_K: usize = 256;

/// The tensor types [`dequantize_row`] reads, by ggml's names.
pub const DEQUANTIZABLE: &[&str] = &[
    "f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K",
    "q6_K",
];

/// Whether [`dequantize_row`] reads this type.
pub fn can_dequantize(t: TensorType) -> bool {
    DEQUANTIZABLE.contains(&t.name)
}

/// Dequantises one row's bytes (whole blocks of type `t`) into f32 values; `None` for a type
/// not in [`DEQUANTIZABLE`] or bytes that are not whole blocks.
pub fn dequantize_row(t: TensorType, bytes: &[u8]) -> Option<Vec<f32>> {
    let block = t.type_size as usize;
    if block == 0 || !bytes.len().is_multiple_of(block) || !can_dequantize(t) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / block * t.block_size as usize);
    for b in bytes.chunks_exact(block) {
        match t.name {
            "f32" => out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            "f16" => out.push(f16(b, 0)),
            "bf16" => out.push(f32::from_bits(u32::from(u16_at(b, 0)) << 16)),
            "q4_0" => q4_0(b, &mut out),
            "q4_1" => q4_1(b, &mut out),
            "q5_0" => q5_0(b, &mut out),
            "q5_1" => q5_1(b, &mut out),
            "q8_0" => q8_0(b, &mut out),
            "q2_K" => q2_k(b, &mut out),
            "q3_K" => q3_k(b, &mut out),
            "q4_K" => q4_k(b, &mut out),
            "q5_K" => q5_k(b, &mut out),
            "q6_K" => q6_k(b, &mut out),
            _ => return None,
        }
    }
    Some(out)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// The IEEE half-precision value at `b[at..at + 2]`, exactly.
fn f16(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16_at(b, at))
}

/// Converts an IEEE half to f32 (exact: every half is an f32).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: m * 2^-24, exact in f32.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Q4_0: scale, then 32 4-bit values (low nibbles first) offset by 8.
fn q4_0(b: &[u8], out: &mut Vec<f32>) {
    let d = f16(b, 0);
    let qs = &b[2..18];
    out.extend(qs.iter().map(|&q| ((q & 0xf) as i32 - 8) as f32 * d));
    out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
}

/// Q4_1: scale and minimum, then 32 4-bit values.
fn q4_1(b: &[u8], out: &mut Vec<f32>) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    let qs = &b[4..20];
    out.extend(qs.iter().map(|&q| (q & 0xf) as f32 * d + m));
    out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
}

/// The 32 5-bit values of a Q5 block: low nibbles from `qs`, fifth bits from `qh`.
fn q5_values(qh: u32, qs: &[u8]) -> [i32; 32] {
    let mut v = [0i32; 32];
    for j in 0..16 {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        v[j] = (u32::from(qs[j] & 0xf) | h0) as i32;
        v[j + 16] = (u32::from(qs[j] >> 4) | h1) as i32;
    }
    v
}

/// Q5_0: scale, high bits, 32 low nibbles; values offset by 16.
fn q5_0(b: &[u8], out: &mut Vec<f32>) {
    let d = f16(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    out.extend(
        q5_values(qh, &b[6..22])
            .iter()
            .map(|&q| (q - 16) as f32 * d),
    );
}

/// Q5_1: scale, minimum, high bits, 32 low nibbles.
fn q5_1(b: &[u8], out: &mut Vec<f32>) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    out.extend(q5_values(qh, &b[8..24]).iter().map(|&q| q as f32 * d + m));
}

/// Q8_0: scale, then 32 signed bytes.
fn q8_0(b: &[u8], out: &mut Vec<f32>) {
    let d = f16(b, 0);
    out.extend(b[2..34].iter().map(|&q| f32::from(q as i8) * d));
}

/// Q2_K: 16 scale/min nibble pairs, 64 bytes of 2-bit values, super-scale and super-min.
fn q2_k(b: &[u8], out: &mut Vec<f32>) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let (d, min) = (f16(b, 80), f16(b, 82));
    let mut is = 0;
    for n in 0..QK_K / 128 {
        let q = &qs[n * 32..n * 32 + 32];
        for shift in [0, 2, 4, 6] {
            for half in [0, 16] {
                let sc = scales[is];
                is += 1;
                let dl = d * f32::from(sc & 0xf);
                let ml = min * f32::from(sc >> 4);
                out.extend(
                    q[half..half + 16]
                        .iter()
                        .map(|&x| dl * f32::from((x >> shift) & 3) - ml),
                );
            }
        }
    }
}

/// Q3_K: high-bit mask, 2-bit values, 16 packed 6-bit scales, super-scale.
fn q3_k(b: &[u8], out: &mut Vec<f32>) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let packed = &b[96..108];
    let d_all = f16(b, 108);
    // ggml's unpacking of the twelve scale bytes into sixteen 6-bit scales.
    let word = |i: usize| u32::from_le_bytes(packed[i * 4..i * 4 + 4].try_into().expect("4"));
    let (kmask1, kmask2) = (0x0303_0303u32, 0x0f0f_0f0fu32);
    let (a0, a1, tmp) = (word(0), word(1), word(2));
    let aux = [
        (a0 & kmask2) | ((tmp & kmask1) << 4),
        (a1 & kmask2) | (((tmp >> 2) & kmask1) << 4),
        ((a0 >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4),
        ((a1 >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4),
    ];
    let scales: Vec<i8> = aux
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .map(|x| x as i8)
        .collect();
    let mut is = 0;
    let mut m = 1u8;
    for n in 0..QK_K / 128 {
        let q = &qs[n * 32..n * 32 + 32];
        for shift in [0, 2, 4, 6] {
            for half in [0, 16] {
                let dl = d_all * f32::from(scales[is] as i16 - 32);
                is += 1;
                out.extend((half..half + 16).map(|l| {
                    let low = i32::from((q[l] >> shift) & 3);
                    let high = if hmask[l] & m != 0 { 0 } else { 4 };
                    dl * (low - high) as f32
                }));
            }
            m <<= 1;
        }
    }
}

/// ggml's `get_scale_min_k4`: the j-th 6-bit scale and minimum of a Q4_K/Q5_K super-block.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K: super-scale, super-min, 12 bytes of packed scales and mins, 128 bytes of nibbles.
fn q4_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, min) = (f16(b, 0), f16(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for (n, q) in qs.chunks_exact(32).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * n, scales);
        let (sc2, m2) = scale_min_k4(2 * n + 1, scales);
        let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
        out.extend(q.iter().map(|&x| d1 * f32::from(x & 0xf) - m1));
        out.extend(q.iter().map(|&x| d2 * f32::from(x >> 4) - m2));
    }
}

/// Q5_K: as Q4_K, with a fifth bit per value in 32 bytes of high bits.
fn q5_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, min) = (f16(b, 0), f16(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for (n, ql) in qs.chunks_exact(32).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * n, scales);
        let (sc2, m2) = scale_min_k4(2 * n + 1, scales);
        let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
        let (u1, u2) = (1u8 << (2 * n), 2u8 << (2 * n));
        out.extend((0..32).map(|l| {
            let high = if qh[l] & u1 != 0 { 16 } else { 0 };
            d1 * f32::from((ql[l] & 0xf) + high) - m1
        }));
        out.extend((0..32).map(|l| {
            let high = if qh[l] & u2 != 0 { 16 } else { 0 };
            d2 * f32::from((ql[l] >> 4) + high) - m2
        }));
    }
}

/// Q6_K: 128 bytes of low nibbles, 64 of high bit pairs, 16 signed scales, super-scale.
fn q6_k(b: &[u8], out: &mut Vec<f32>) {
    let d = f16(b, 208);
    let start = out.len();
    out.resize(start + QK_K, 0.0);
    let y = &mut out[start..];
    for n in 0..QK_K / 128 {
        let ql = &b[n * 64..n * 64 + 64];
        let qh = &b[128 + n * 32..128 + n * 32 + 32];
        let sc = &b[192 + n * 8..192 + n * 8 + 8];
        let y = &mut y[n * 128..n * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = i32::from((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32;
            let q2 = i32::from((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
            let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            let s = |k: usize| d * f32::from(sc[is + k] as i8);
            y[l] = s(0) * q1 as f32;
            y[l + 32] = s(2) * q2 as f32;
            y[l + 64] = s(4) * q3 as f32;
            y[l + 96] = s(6) * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }

    #[test]
    fn q8_0_blocks_scale_signed_bytes() {
        let t = TensorType::from_tag(8).unwrap();
        let mut block = vec![0x00, 0x38]; // 0.5
        block.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let row = dequantize_row(t, &block).unwrap();
        assert_eq!(row.len(), 32);
        assert_eq!(row[0], -8.0);
        assert_eq!(row[31], 7.5);
        assert!(dequantize_row(t, &block[..33]).is_none(), "a partial block");
    }

    #[test]
    fn unsupported_types_are_refused() {
        let iq4 = TensorType::from_tag(20).unwrap();
        assert!(!can_dequantize(iq4));
        assert!(dequantize_row(iq4, &[0; 18]).is_none());
    }
}
