//! Text → token tensors, padded per batch.
//!
//! Some `tokenizer.json` files pin padding to a fixed length (MiniLM's pads everything to 128),
//! which wastes most of a short sentence's compute. The encoder turns the tokenizer's own padding
//! off, truncates at the model's limit, and pads each batch only to its longest member.

use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::{EngineError, ModelFolder, Result};

/// Token tensors for one `session.run`, row-major `[batch, seq]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBatch {
    pub batch: usize,
    pub seq: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub type_ids: Vec<i64>,
    /// Tokens per row before padding (special tokens included).
    pub tokens: Vec<usize>,
    /// Whether each row was cut at the model's `max_length`.
    pub truncated: Vec<bool>,
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
            tokens: Vec::with_capacity(batch),
            truncated: Vec::with_capacity(batch),
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
}
