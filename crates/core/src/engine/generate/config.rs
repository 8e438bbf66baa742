//! What a generation model's folder says about decoding: `generation_config.json` (defaults for
//! sampling, end-of-sequence ids) and `tokenizer_config.json` (special tokens, chat template).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::engine::{EngineError, Result};

pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// Newer exports keep the chat template in a file of its own.
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";

/// The decoding defaults a model ships with (`generation_config.json`), as Hugging Face reads
/// them: a field that is missing takes transformers' default.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub do_sample: bool,
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub repetition_penalty: f32,
    pub max_new_tokens: Option<usize>,
    /// Ids that end generation (`eos_token_id`, a number or a list).
    pub eos_token_ids: Vec<u32>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            repetition_penalty: 1.0,
            max_new_tokens: None,
            eos_token_ids: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct RawGenerationConfig {
    do_sample: Option<bool>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    repetition_penalty: Option<f32>,
    max_new_tokens: Option<usize>,
    eos_token_id: Option<OneOrMany>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

impl GenerationConfig {
    /// Read `generation_config.json` from `dir` (transformers' defaults if there is none), falling
    /// back to `config.json`'s `eos_token_id` when it names no end-of-sequence ids.
    pub fn load(dir: &Path, config: &Value) -> Result<GenerationConfig> {
        let path = dir.join(GENERATION_CONFIG_FILE);
        let mut out = GenerationConfig::default();
        let mut eos = None;
        if path.is_file() {
            let bad = |reason: String| {
                EngineError::invalid(
                    dir,
                    format!("{GENERATION_CONFIG_FILE} is not valid: {reason}; fix the file or delete it to use the defaults"),
                )
            };
            let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
            let raw: RawGenerationConfig = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            out.do_sample = raw.do_sample.unwrap_or(out.do_sample);
            out.temperature = raw.temperature.unwrap_or(out.temperature);
            out.top_k = raw.top_k.unwrap_or(out.top_k);
            out.top_p = raw.top_p.unwrap_or(out.top_p);
            out.repetition_penalty = raw.repetition_penalty.unwrap_or(out.repetition_penalty);
            out.max_new_tokens = raw.max_new_tokens;
            eos = raw.eos_token_id;
            if !(out.temperature >= 0.0 && out.temperature.is_finite()) {
                return Err(bad(format!("temperature {} must be a number ≥ 0", out.temperature)));
            }
            if !(out.top_p > 0.0 && out.top_p <= 1.0) {
                return Err(bad(format!("top_p {} must be in (0, 1]", out.top_p)));
            }
            if !(out.repetition_penalty > 0.0 && out.repetition_penalty.is_finite()) {
                return Err(bad(format!("repetition_penalty {} must be > 0", out.repetition_penalty)));
            }
        }
        let eos = eos.or_else(|| config.get("eos_token_id").and_then(|v| serde_json::from_value(v.clone()).ok()));
        out.eos_token_ids = match eos {
            Some(OneOrMany::One(id)) => vec![id],
            Some(OneOrMany::Many(ids)) => ids,
            None => Vec::new(),
        };
        Ok(out)
    }
}

/// The parts of `tokenizer_config.json` generation needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizerConfig {
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub chat_template: Option<String>,
}

impl TokenizerConfig {
    pub fn load(dir: &Path) -> Result<TokenizerConfig> {
        let path = dir.join(TOKENIZER_CONFIG_FILE);
        let mut out = TokenizerConfig::default();
        if path.is_file() {
            let bad =
                |reason: String| EngineError::invalid(dir, format!("{TOKENIZER_CONFIG_FILE} is not valid: {reason}"));
            let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
            let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            // Special tokens are strings or AddedToken objects ({"content": "<s>", ...}).
            let token = |key: &str| match value.get(key) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).map(str::to_string),
                _ => None,
            };
            out.bos_token = token("bos_token");
            out.eos_token = token("eos_token");
            // One template, or a list of named ones of which "default" is the chat template.
            out.chat_template = match value.get("chat_template") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                    .and_then(|t| t.get("template").and_then(Value::as_str))
                    .map(str::to_string),
                Some(Value::Null) | None => None,
                Some(_) => return Err(bad("`chat_template` must be a string or a list of named templates".into())),
            };
        }
        if out.chat_template.is_none() && dir.join(CHAT_TEMPLATE_FILE).is_file() {
            out.chat_template = Some(
                std::fs::read_to_string(dir.join(CHAT_TEMPLATE_FILE))
                    .map_err(|e| EngineError::invalid(dir, format!("{CHAT_TEMPLATE_FILE} cannot be read: {e}")))?,
            );
        }
        Ok(out)
    }
}
