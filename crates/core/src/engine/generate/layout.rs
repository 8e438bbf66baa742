//! What a decoder graph takes and gives, read from its inputs and outputs (Hugging Face Optimum's
//! naming) and `config.json`: layers, KV heads, head size, KV precision, optional inputs.

use ort::session::Session;
use ort::value::TensorElementType;
use ort::value::ValueType;
use serde::Serialize;
use serde_json::Value;

use crate::engine::{EngineError, Result};

/// The precision of the KV cache tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KvType {
    F32,
    F16,
}

impl KvType {
    pub fn bytes(self) -> usize {
        match self {
            KvType::F32 => 4,
            KvType::F16 => 2,
        }
    }
}

impl std::fmt::Display for KvType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KvType::F32 => "fp32",
            KvType::F16 => "fp16",
        })
    }
}

/// The decoder's interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    /// Transformer layers with a KV cache (0: the graph has no `past_key_values` inputs and every
    /// step recomputes the whole sequence).
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub kv_type: KvType,
    pub position_ids: bool,
    /// Merged decoders (`decoder_model_merged.onnx`) switch between prefill and decode with it.
    pub use_cache_branch: bool,
    pub logits_f16: bool,
    #[serde(skip)]
    pub past_names: Vec<[String; 2]>,
    #[serde(skip)]
    pub present_names: Vec<[String; 2]>,
}

impl Layout {
    /// Bytes of KV cache per token of context.
    pub fn kv_bytes_per_token(&self) -> usize {
        2 * self.layers * self.kv_heads * self.head_dim * self.kv_type.bytes()
    }

    pub fn read(session: &Session, config: &Value, dir: &std::path::Path) -> Result<Layout> {
        let invalid = |problem: String| EngineError::invalid(dir, problem);
        let mut past: Vec<[Option<String>; 2]> = Vec::new();
        let (mut has_ids, mut position_ids, mut use_cache_branch, mut has_mask) = (false, false, false, false);
        let mut kv = None;
        for input in session.inputs() {
            let name = input.name();
            match name {
                "input_ids" => has_ids = true,
                "attention_mask" => has_mask = true,
                "position_ids" => position_ids = true,
                "use_cache_branch" => use_cache_branch = true,
                _ => {
                    let Some((layer, slot)) = past_slot(name, "past_key_values.") else {
                        return Err(invalid(format!(
                            "model.onnx takes an input `{name}`; a decoder for Benchtop takes input_ids, attention_mask, \
                             optional position_ids and past_key_values.N.key/value (Hugging Face Optimum's export)"
                        )));
                    };
                    if past.len() <= layer {
                        past.resize(layer + 1, [None, None]);
                    }
                    past[layer][slot] = Some(name.to_string());
                    if kv.is_none() {
                        kv = Some(kv_shape(input.dtype()).map_err(|e| invalid(format!("input `{name}` {e}")))?);
                    }
                }
            }
        }
        if !has_ids || !has_mask {
            return Err(invalid(
                "model.onnx must take `input_ids` and `attention_mask` to be used for generation".into(),
            ));
        }
        let past_names: Vec<[String; 2]> = past
            .into_iter()
            .enumerate()
            .map(|(layer, [k, v])| match (k, v) {
                (Some(k), Some(v)) => Ok([k, v]),
                _ => Err(invalid(format!("model.onnx lacks past_key_values.{layer}.key or .value"))),
            })
            .collect::<Result<_>>()?;
        let layers = past_names.len();
        let mut present: Vec<[Option<String>; 2]> = vec![[None, None]; layers];
        let mut logits = None;
        for output in session.outputs() {
            let name = output.name();
            if name == "logits" {
                logits = Some(output.dtype().clone());
            } else if let Some((layer, slot)) = past_slot(name, "present.") {
                if let Some(entry) = present.get_mut(layer) {
                    entry[slot] = Some(name.to_string());
                }
            }
        }
        let present_names: Vec<[String; 2]> = present
            .into_iter()
            .enumerate()
            .map(|(layer, [k, v])| match (k, v) {
                (Some(k), Some(v)) => Ok([k, v]),
                _ => Err(invalid(format!(
                    "model.onnx takes past_key_values.{layer}.* but has no present.{layer}.key/value outputs"
                ))),
            })
            .collect::<Result<_>>()?;
        let logits_f16 = match logits {
            Some(ValueType::Tensor { ty: TensorElementType::Float32, .. }) => false,
            Some(ValueType::Tensor { ty: TensorElementType::Float16, .. }) => true,
            Some(other) => {
                return Err(invalid(format!("output `logits` is {other}; Benchtop reads float32 or float16")))
            }
            None => return Err(invalid("model.onnx has no `logits` output".into())),
        };
        let (kv_type, graph_heads, graph_dim) = kv.unwrap_or((KvType::F32, None, None));
        let number =
            |keys: &[&str]| keys.iter().find_map(|k| config.get(*k).and_then(Value::as_u64)).map(|v| v as usize);
        let heads = number(&["num_attention_heads", "n_head"]);
        let kv_heads = graph_heads.or(number(&["num_key_value_heads"])).or(heads);
        let head_dim =
            graph_dim.or(number(&["head_dim"])).or_else(|| Some(number(&["hidden_size", "n_embd"])? / heads?));
        let (kv_heads, head_dim) = match (kv_heads, head_dim) {
            (Some(h), Some(d)) => (h, d),
            _ if layers == 0 => (0, 0),
            _ => {
                return Err(invalid(
                    "the KV cache's heads and head size are neither fixed in model.onnx nor given in config.json \
                     (num_key_value_heads, head_dim or hidden_size / num_attention_heads)"
                        .into(),
                ))
            }
        };
        Ok(Layout {
            layers,
            kv_heads,
            head_dim,
            kv_type,
            position_ids,
            use_cache_branch,
            logits_f16,
            past_names,
            present_names,
        })
    }
}

/// `past_key_values.3.value` → (3, 1).
fn past_slot(name: &str, prefix: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix(prefix)?;
    let (layer, kind) = rest.split_once('.')?;
    let slot = match kind {
        "key" => 0,
        "value" => 1,
        _ => return None,
    };
    Some((layer.parse().ok()?, slot))
}

/// A past input's element type, and its heads and head size when the graph fixes them
/// (`[batch, kv_heads, past_sequence, head_dim]`).
fn kv_shape(dtype: &ValueType) -> std::result::Result<(KvType, Option<usize>, Option<usize>), String> {
    let ValueType::Tensor { ty, shape, .. } = dtype else {
        return Err(format!("is {dtype}, not a tensor"));
    };
    let kind = match ty {
        TensorElementType::Float32 => KvType::F32,
        TensorElementType::Float16 => KvType::F16,
        other => return Err(format!("holds {other}; Benchtop runs float32 and float16 KV caches")),
    };
    if shape.len() != 4 {
        return Err(format!("has {} dimensions; expected [batch, kv_heads, past_sequence, head_dim]", shape.len()));
    }
    let fixed = |d: i64| usize::try_from(d).ok().filter(|d| *d > 0);
    Ok((kind, fixed(shape[1]), fixed(shape[3])))
}
