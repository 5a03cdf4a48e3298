//! A compact copy of every stored vector for the exact-search scan: one signed byte per
//! dimension and one scale per vector (`x ≈ scale * code`). The scan reads a quarter of the
//! bytes the float vectors take, and the error of each approximate score has a hard bound,
//! so the search can rescore with the float vectors every chunk that could still be among
//! the best and return exactly what a scan of the float vectors returns.

/// The code of a vector: `(scale, bytes)` with `x[i] ≈ scale * bytes[i] as i8`, each value
/// rounded to the nearest step, so that `|x[i] - scale * code[i]| <= scale / 2`.
pub fn encode(v: &[f32]) -> (f32, Vec<u8>) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return (0.0, vec![0; v.len()]);
    }
    let scale = max / 127.0;
    let code = v
        .iter()
        .map(|&x| (x / scale).round().clamp(-127.0, 127.0) as i8 as u8)
        .collect();
    (scale, code)
}

/// The approximate dot product of a code with `query`: `scale * sum(query[i] * code[i])`.
pub fn dot(scale: f32, code: &[u8], query: &[f32]) -> f32 {
    // Sixteen independent sums, so that the compiler turns the loop into vector code.
    let mut sums = [0f32; 16];
    let blocks = code.chunks_exact(16).zip(query.chunks_exact(16));
    for (c, q) in blocks {
        for lane in 0..16 {
            sums[lane] += f32::from(c[lane] as i8) * q[lane];
        }
    }
    let tail = query.len() / 16 * 16;
    let rest: f32 = code[tail..]
        .iter()
        .zip(&query[tail..])
        .map(|(&c, q)| f32::from(c as i8) * q)
        .sum();
    scale * (sums.iter().sum::<f32>() + rest)
}

/// How far [`dot`] can be from the float dot product of the vector the code came from, for
/// a query whose absolute values sum to `query_l1`: each value's rounding (at most half a
/// step, `scale / 2`) times the query's weight on it, doubled to cover the float rounding
/// of both sums (each well under a hundredth of that for a thousand dimensions), plus a
/// floor for vectors whose code is exact.
pub fn error_bound(scale: f32, query_l1: f32) -> f32 {
    scale * query_l1 + 1e-5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float_dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// Deterministic pseudo-random unit vectors, some of them with one large value (a
    /// coarse scale for the rest).
    fn vectors(n: usize, dims: usize) -> Vec<Vec<f32>> {
        let mut state = 0x2545f4914f6cdd1du64;
        (0..n)
            .map(|i| {
                let mut v: Vec<f32> = (0..dims)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .collect();
                if i % 5 == 0 {
                    v[i % dims] = 40.0;
                }
                crate::vector::l2_normalize(&mut v);
                v
            })
            .collect()
    }

    #[test]
    fn each_value_is_within_half_a_step() {
        for v in vectors(20, 37) {
            let (scale, code) = encode(&v);
            assert!(scale > 0.0);
            for (x, c) in v.iter().zip(&code) {
                assert!((x - scale * f32::from(*c as i8)).abs() <= scale / 2.0 * 1.0001);
            }
            // The largest value is coded exactly at the end of the range.
            assert!(code.iter().any(|&c| (c as i8).unsigned_abs() == 127));
        }
    }

    #[test]
    fn the_approximate_score_stays_within_its_bound() {
        let data = vectors(200, 1024);
        let queries = vectors(10, 1024);
        let mut worst = 0f32;
        for q in &queries {
            let l1: f32 = q.iter().map(|x| x.abs()).sum();
            for (i, v) in data.iter().enumerate() {
                let (scale, code) = encode(v);
                let exact = float_dot(v, q);
                let approx = dot(scale, &code, q);
                let bound = error_bound(scale, l1);
                assert!(
                    (approx - exact).abs() <= bound,
                    "{approx} vs {exact}, bound {bound}"
                );
                worst = worst.max((approx - exact).abs() / bound);
                // Without an outlier value the bound is a few hundredths: tight enough that
                // the search rescores few chunks.
                if i % 5 != 0 {
                    assert!(bound < 0.03, "bound {bound}");
                }
            }
        }
        assert!(worst > 0.0);
    }

    #[test]
    fn zero_and_odd_lengths_are_coded() {
        assert_eq!(encode(&[0.0; 5]), (0.0, vec![0; 5]));
        let v = [0.5f32, -0.25, 0.125];
        let (scale, code) = encode(&v);
        assert_eq!(code.len(), 3);
        let q = [1.0f32, 2.0, 3.0];
        let approx = dot(scale, &code, &q);
        assert!((approx - float_dot(&v, &q)).abs() <= error_bound(scale, 6.0));
    }
}
