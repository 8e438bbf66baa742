//! Turning raw outputs into answers: pooling, normalisation, activations. Pure functions over
//! row-major buffers, so they can be checked without a model.

use super::{Activation, EncodedBatch};

/// Average of each text's token vectors (padding left out), from `hidden` `[rows, seq, dim]`
/// laid out as `batch` is.
pub(crate) fn mean_pool(hidden: &[f32], batch: &EncodedBatch, dim: usize) -> Vec<Vec<f32>> {
    let mut sums = vec![vec![0f32; dim]; batch.texts()];
    let mut counts = vec![0f32; batch.texts()];
    for (index, token) in hidden.chunks_exact(dim).enumerate() {
        if let Some(text) = batch.text_at(index).filter(|&t| t < sums.len()) {
            sums[text].iter_mut().zip(token).for_each(|(acc, v)| *acc += v);
            counts[text] += 1.0;
        }
    }
    for (sum, count) in sums.iter_mut().zip(counts) {
        let count = count.max(1e-9);
        sum.iter_mut().for_each(|v| *v /= count);
    }
    sums
}

/// Each text's first token vector (`[CLS]`).
pub(crate) fn cls_pool(hidden: &[f32], batch: &EncodedBatch, dim: usize) -> Vec<Vec<f32>> {
    let mut first: Vec<Option<Vec<f32>>> = vec![None; batch.texts()];
    for (index, token) in hidden.chunks_exact(dim).enumerate() {
        if let Some(slot) = batch.text_at(index).and_then(|t| first.get_mut(t)).filter(|s| s.is_none()) {
            *slot = Some(token.to_vec());
        }
    }
    first.into_iter().map(|v| v.unwrap_or_else(|| vec![0.0; dim])).collect()
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

    /// A batch with this mask (`rows` × `seq`), one text per row or packed (rows starting at
    /// the texts `row_starts`).
    fn batch(mask: &[i64], rows: usize, row_starts: &[usize], texts: usize) -> EncodedBatch {
        EncodedBatch {
            batch: rows,
            seq: mask.len() / rows,
            input_ids: vec![0; mask.len()],
            attention_mask: mask.to_vec(),
            type_ids: vec![0; mask.len()],
            position_ids: vec![0; mask.len()],
            tokens: vec![0; texts],
            truncated: vec![false; texts],
            row_starts: row_starts.to_vec(),
        }
    }

    #[test]
    fn mean_pool_ignores_masked_positions() {
        // two rows, seq 3, dim 2; row 0 has one padded position holding garbage
        let hidden = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0, 1.0, 1.0, 1.0, 1.0, 4.0, 7.0];
        let pooled = mean_pool(&hidden, &batch(&[1, 1, 0, 1, 1, 1], 2, &[], 2), 2);
        assert_eq!(pooled, vec![vec![2.0, 3.0], vec![2.0, 3.0]]);
    }

    #[test]
    fn mean_pool_of_packed_texts_averages_each_text_alone() {
        // one row: text 1 has two tokens, text 2 three, then one padding position
        let hidden = [1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0, 4.0, 7.0, 50.0, 50.0];
        let pooled = mean_pool(&hidden, &batch(&[1, 1, 2, 2, 2, 0], 1, &[0], 2), 2);
        assert_eq!(pooled, vec![vec![2.0, 3.0], vec![2.0, 3.0]]);
    }

    #[test]
    fn mean_pool_of_packed_rows_numbers_texts_row_by_row() {
        // row 0: texts 0 (two tokens) and 1 (one token); row 1: text 2 (two tokens), padding
        let hidden = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 1.0, 2.0, 3.0, 80.0, 80.0];
        let packed = batch(&[1, 1, 2, 1, 1, 0], 2, &[0, 2], 3);
        assert_eq!(mean_pool(&hidden, &packed, 2), vec![vec![2.0, 3.0], vec![5.0, 6.0], vec![1.0, 2.0]]);
        assert_eq!(cls_pool(&hidden, &packed, 2), vec![vec![1.0, 2.0], vec![5.0, 6.0], vec![0.0, 1.0]]);
        // a graph pooling per text answers `rows × most texts in a row`, empty slots included
        assert_eq!(packed.pooled_rows(), 4);
        assert_eq!((0..3).map(|t| packed.pooled_row(t)).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn cls_pool_takes_each_texts_first_token() {
        let hidden = [1.0, 2.0, 9.0, 9.0, 3.0, 4.0, 9.0, 9.0];
        assert_eq!(cls_pool(&hidden, &batch(&[1, 1, 1, 1], 2, &[], 2), 2), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert_eq!(cls_pool(&hidden, &batch(&[1, 1, 2, 2], 1, &[0], 2), 2), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
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
