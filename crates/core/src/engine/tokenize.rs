//! Text → token tensors, padded per batch.
//!
//! Some `tokenizer.json` files pin padding to a fixed length (MiniLM's pads everything to 128),
//! which wastes most of a short sentence's compute. The encoder turns the tokenizer's own padding
//! off, truncates at the model's limit, and pads each batch only to its longest member.

use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::{EngineError, ModelFolder, Result};

/// Token tensors for one `session.run`, row-major `[batch, seq]`: one text per row, padded to
/// the longest, or (`packed`) several texts one after another in each row, each marked in
/// `attention_mask` by its number within the row, 1 to k, and rows padded to the longest.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBatch {
    /// Rows of the tensors.
    pub batch: usize,
    pub seq: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub type_ids: Vec<i64>,
    /// Position of each token within its own text.
    pub position_ids: Vec<i64>,
    /// Tokens per text before padding (special tokens included).
    pub tokens: Vec<usize>,
    /// Whether each text was cut at the model's `max_length`.
    pub truncated: Vec<bool>,
    /// Packed: the index (in `tokens`) of each row's first text; texts fill the rows in order.
    /// Empty when not packed (a packed batch has at least one row).
    pub row_starts: Vec<usize>,
}

impl EncodedBatch {
    /// Whether rows hold several texts, numbered in the mask.
    pub fn packed(&self) -> bool {
        !self.row_starts.is_empty()
    }

    /// How many texts the tensors hold.
    pub fn texts(&self) -> usize {
        self.tokens.len()
    }

    /// The text the token at `index` (row-major) belongs to, or `None` for padding.
    pub fn text_at(&self, index: usize) -> Option<usize> {
        let row = index / self.seq.max(1);
        match self.attention_mask[index] {
            0 => None,
            number if self.packed() => Some(self.row_starts.get(row)? + usize::try_from(number - 1).ok()?),
            _ => Some(row),
        }
    }

    /// Rows of a graph's output that pools per text (`[texts, …]`): one per text, or, packed,
    /// one per row and text number — `batch × most texts in a row`, empty slots included.
    pub fn pooled_rows(&self) -> usize {
        if self.packed() {
            self.batch * self.most_texts_in_a_row()
        } else {
            self.texts()
        }
    }

    /// Which of [`EncodedBatch::pooled_rows`] holds text `text`'s answer.
    pub fn pooled_row(&self, text: usize) -> usize {
        if !self.packed() {
            return text;
        }
        let row = self.row_starts.partition_point(|&start| start <= text).saturating_sub(1);
        row * self.most_texts_in_a_row() + (text - self.row_starts[row])
    }

    fn most_texts_in_a_row(&self) -> usize {
        let ends = self.row_starts.iter().skip(1).copied().chain([self.texts()]);
        self.row_starts.iter().zip(ends).map(|(start, end)| end - start).max().unwrap_or(0)
    }
}

pub(crate) struct TextEncoder {
    tokenizer: Tokenizer,
    pad_id: i64,
    model: String,
}

impl TextEncoder {
    pub(crate) fn load(folder: &ModelFolder) -> Result<TextEncoder> {
        let path = folder.tokenizer_path();
        let fail = |reason: String| EngineError::TokenizerLoad { path: path.clone(), reason };
        let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| fail(e.to_string()))?;
        // The pad id: the tokenizer's own padding setting, else config.json, else a [PAD] / <pad>
        // token, else 0. It only fills positions the attention mask hides.
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .or(folder.pad_token_id)
            .or_else(|| ["[PAD]", "<pad>"].iter().find_map(|t| tokenizer.token_to_id(t)))
            .unwrap_or(0);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: folder.max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| fail(format!("cannot truncate at {} tokens: {e}", folder.max_length)))?;
        Ok(TextEncoder { tokenizer, pad_id: i64::from(pad_id), model: folder.name.clone() })
    }

    /// Tokenise each text on its own (no padding), with special tokens.
    pub(crate) fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        texts
            .iter()
            .map(|text| {
                self.tokenizer
                    .encode_fast(*text, true)
                    .map_err(|e| EngineError::Tokenize { model: self.model.clone(), reason: e.to_string() })
            })
            .collect()
    }

    /// Pad `encodings` to the longest of them.
    pub(crate) fn pad(&self, encodings: &[&Encoding]) -> EncodedBatch {
        let batch = encodings.len();
        let seq = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut out = EncodedBatch {
            batch,
            seq,
            input_ids: vec![self.pad_id; batch * seq],
            attention_mask: vec![0; batch * seq],
            type_ids: vec![0; batch * seq],
            position_ids: (0..batch).flat_map(|_| 0..seq as i64).collect(),
            tokens: Vec::with_capacity(batch),
            truncated: Vec::with_capacity(batch),
            row_starts: Vec::new(),
        };
        for (row, enc) in encodings.iter().enumerate() {
            let base = row * seq;
            for (i, ((&id, &mask), &ty)) in
                enc.get_ids().iter().zip(enc.get_attention_mask()).zip(enc.get_type_ids()).enumerate()
            {
                out.input_ids[base + i] = i64::from(id);
                out.attention_mask[base + i] = i64::from(mask);
                out.type_ids[base + i] = i64::from(ty);
            }
            out.tokens.push(enc.len());
            out.truncated.push(!enc.get_overflowing().is_empty());
        }
        out
    }

    /// Each row's `encodings` one after another, rows padded to the longest: text k of a row
    /// carries mask k + 1 and positions from 0 (padding: mask 0, its index in the row). Only
    /// for graphs that read such masks (`packed_batches`).
    pub(crate) fn pack(&self, rows: &[Vec<&Encoding>]) -> EncodedBatch {
        let batch = rows.len();
        let row_tokens = |row: &[&Encoding]| row.iter().map(|e| e.len()).sum::<usize>();
        let seq = rows.iter().map(|row| row_tokens(row)).max().unwrap_or(0);
        let texts = rows.iter().map(Vec::len).sum();
        let mut out = EncodedBatch {
            batch,
            seq,
            input_ids: Vec::with_capacity(batch * seq),
            attention_mask: Vec::with_capacity(batch * seq),
            type_ids: Vec::with_capacity(batch * seq),
            position_ids: Vec::with_capacity(batch * seq),
            tokens: Vec::with_capacity(texts),
            truncated: Vec::with_capacity(texts),
            row_starts: Vec::with_capacity(batch),
        };
        for row in rows {
            out.row_starts.push(out.tokens.len());
            for (number, enc) in (1i64..).zip(row) {
                out.input_ids.extend(enc.get_ids().iter().map(|&id| i64::from(id)));
                out.attention_mask.extend(enc.get_attention_mask().iter().map(|&m| if m == 0 { 0 } else { number }));
                out.type_ids.extend(enc.get_type_ids().iter().map(|&t| i64::from(t)));
                out.position_ids.extend(0..enc.len() as i64);
                out.tokens.push(enc.len());
                out.truncated.push(!enc.get_overflowing().is_empty());
            }
            let filled = row_tokens(row);
            let padding = seq - filled;
            out.input_ids.extend(std::iter::repeat_n(self.pad_id, padding));
            out.attention_mask.extend(std::iter::repeat_n(0, padding));
            out.type_ids.extend(std::iter::repeat_n(0, padding));
            out.position_ids.extend(filled as i64..seq as i64);
        }
        out
    }
}
