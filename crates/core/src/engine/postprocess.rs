//! Turning raw outputs into answers: pooling, normalisation, activations. Pure functions over
//! row-major buffers, so they can be checked without a model.

use super::Activation;

/// Average of the token vectors whose mask is 1, for each row of `hidden` `[batch, seq, dim]`.
pub(crate) fn mean_pool(hidden: &[f32], mask: &[i64], batch: usize, seq: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..batch)
        .map(|b| {
            let mut sum = vec![0f32; dim];
            let mut count = 0f32;
            for s in 0..seq {
                if mask[b * seq + s] != 0 {
                    let token = &hidden[(b * seq + s) * dim..(b * seq + s + 1) * dim];
                    sum.iter_mut().zip(token).for_each(|(acc, v)| *acc += v);
                    count += 1.0;
                }
            }
            let count = count.max(1e-9);
            sum.iter_mut().for_each(|v| *v /= count);
            sum
        })
        .collect()
}

/// The first token's vector of each row.
pub(crate) fn cls_pool(hidden: &[f32], batch: usize, seq: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..batch).map(|b| hidden[b * seq * dim..b * seq * dim + dim].to_vec()).collect()
}

/// Scale to unit length (a zero vector stays zero).
pub(crate) fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

pub(crate) fn activate(logits: &[f32], activation: Activation) -> Vec<f32> {
    match activation {
        Activation::Sigmoid => logits.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect(),
        Activation::Softmax => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exp: Vec<f32> = logits.iter().map(|x| (x - max).exp()).collect();
            let sum: f32 = exp.iter().sum();
            exp.into_iter().map(|e| e / sum).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pool_ignores_masked_positions() {
        // two rows, seq 3, dim 2; row 0 has one padded position holding garbage
        let hidden = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0, 1.0, 1.0, 1.0, 1.0, 4.0, 7.0];
        let mask = [1, 1, 0, 1, 1, 1];
        let pooled = mean_pool(&hidden, &mask, 2, 3, 2);
        assert_eq!(pooled, vec![vec![2.0, 3.0], vec![2.0, 3.0]]);
    }

    #[test]
    fn cls_pool_takes_first_token() {
        let hidden = [1.0, 2.0, 9.0, 9.0, 3.0, 4.0, 9.0, 9.0];
        assert_eq!(cls_pool(&hidden, 2, 2, 2), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
    }

    #[test]
    fn normalize_gives_unit_length_and_keeps_zero() {
        let mut v = [3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = [0.0, 0.0];
        l2_normalize(&mut zero);
        assert_eq!(zero, [0.0, 0.0]);
    }

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let p = activate(&[1000.0, 1000.0, -1000.0], Activation::Softmax);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6 && p[2] == 0.0);
        let s = activate(&[0.0, 100.0], Activation::Sigmoid);
        assert_eq!(s, vec![0.5, 1.0]);
    }
}
