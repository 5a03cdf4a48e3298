//! Vector post-processing: Matryoshka truncation, L2 normalisation and similarity.

/// Turns a pooled hidden state into the output vector: keep the first `dimensions` values
/// (Matryoshka), then L2-normalise if asked. Truncating first, then normalising, is the order
/// Qwen3-Embedding's MRL training expects.
pub fn finish(hidden: &[f32], dimensions: Option<usize>, normalize: bool) -> Vec<f32> {
    let n = dimensions.unwrap_or(hidden.len()).min(hidden.len());
    let mut v = hidden[..n].to_vec();
    if normalize {
        l2_normalize(&mut v);
    }
    v
}

/// Scales a vector to unit length (a zero vector stays zero). Accumulates in f64.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in v {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

/// The dot product of two vectors of the same length (accumulated in f32).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Cosine similarity (accumulated in f64); 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_then_normalises() {
        let v = finish(&[3.0, 4.0, 12.0], Some(2), true);
        assert_eq!(v, [0.6, 0.8]);
        let raw = finish(&[3.0, 4.0, 12.0], Some(2), false);
        assert_eq!(raw, [3.0, 4.0]);
        let full = finish(&[3.0, 4.0, 12.0], None, true);
        assert!((full.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn zero_vectors_stay_zero() {
        let mut v = [0.0f32; 4];
        l2_normalize(&mut v);
        assert_eq!(v, [0.0; 4]);
        assert_eq!(cosine(&v, &[1.0, 0.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn cosine_of_parallel_and_orthogonal_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-12);
        assert!((dot(&[1.0, 2.0], &[3.0, 4.0]) - 11.0).abs() < 1e-6);
    }
}
