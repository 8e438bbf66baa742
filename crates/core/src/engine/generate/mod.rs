//! Text generation with decoder-only ONNX models (Hugging Face Optimum exports: GPT-2, Llama,
//! Qwen2, SmolLM, Phi-3…): a KV cache carried from step to step, greedy or seeded sampling,
//! stop sequences, streaming, cancellation, chat templates.
//!
//! The loop: the prompt runs once (prefill) with empty past tensors; each later step feeds only
//! the newest token, and the `present.N.*` outputs of one step are handed to ONNX Runtime as the
//! next step's `past_key_values.N.*` inputs as they are — the cache is never copied or converted
//! on the Rust side.

mod chat;
mod config;
mod layout;
mod sampler;
mod stream;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorRef};
use serde::Serialize;
use tokenizers::Tokenizer;

pub use chat::{ChatError, ChatTemplate, Message, Role};
pub use config::{GenerationConfig, TokenizerConfig};
pub use layout::{KvType, Layout};
pub use sampler::{argmax, Sampler, Sampling};
pub use stream::{StopText, TextStream};

use super::runtime::SubnormalsAsZero;
use super::{EngineError, ModelFolder, Result, Runtime, Task};

/// New tokens when neither the caller nor `generation_config.json` says.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 256;

/// What to generate from.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Plain text, tokenised with the tokenizer's special tokens (BOS…) added.
    Text(String),
    /// A conversation, rendered with the model's chat template and the assistant's turn opened.
    Chat(Vec<Message>),
}

/// Decoding settings; `None` takes the model's `generation_config.json` value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerateParams {
    pub max_new_tokens: Option<usize>,
    /// 0 = greedy. If the model's config does not sample (`do_sample` false), the default is greedy.
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    /// Fixes the sampling; without it a seed is drawn and reported in [`Generation::seed`].
    pub seed: Option<u64>,
    /// Generation ends before the first occurrence of any of these (not included in the text).
    pub stop: Vec<String>,
    /// Recompute the whole sequence each step instead of using the KV cache (slow; for checking
    /// the cache, and the only way for graphs exported without one).
    pub no_cache: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token or a stop sequence.
    Stop,
    /// `max_new_tokens` or the model's context window was reached.
    Length,
    /// The caller cancelled.
    Cancelled,
}

impl FinishReason {
    pub fn name(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// A finished (or cancelled) generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    /// The text, exactly as streamed (stop sequence excluded).
    pub text: String,
    /// Generated token ids (the end-of-sequence token excluded).
    pub token_ids: Vec<u32>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// The sampling seed (repeat a sampled generation by passing it back).
    pub seed: u64,
    /// Whether tokens were sampled (false: greedy).
    pub sampled: bool,
    /// From the call to the first new token (tokenising and prefill).
    #[serde(serialize_with = "as_millis")]
    pub time_to_first_token: Duration,
    #[serde(serialize_with = "as_millis")]
    pub total_time: Duration,
}

impl Generation {
    /// Decode speed: new tokens after the first, per second of decoding.
    pub fn tokens_per_second(&self) -> f64 {
        let decode = self.total_time.saturating_sub(self.time_to_first_token).as_secs_f64();
        if self.usage.completion_tokens < 2 || decode <= 0.0 {
            return 0.0;
        }
        (self.usage.completion_tokens - 1) as f64 / decode
    }
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// A loaded generation model. Share it (`Arc<Generator>`); concurrent generations take turns on
/// the session one step at a time.
pub struct Generator {
    folder: ModelFolder,
    tokenizer: Tokenizer,
    session: Mutex<Session>,
    layout: Layout,
    defaults: GenerationConfig,
    chat: Option<ChatTemplate>,
    chat_error: Option<String>,
    vocab: usize,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator").field("model", &self.folder.name).field("layout", &self.layout).finish()
    }
}

impl Generator {
    pub fn load(runtime: &Runtime, folder: ModelFolder) -> Result<Generator> {
        if folder.task != Task::Generation {
            return Err(EngineError::WrongTask {
                model: folder.name.clone(),
                actual: folder.task.name(),
                wanted: "generation",
            });
        }
        let dir = folder.dir.clone();
        let config: serde_json::Value = std::fs::read_to_string(dir.join(super::folder::CONFIG_FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let defaults = GenerationConfig::load(&dir, &config)?;
        let tokenizer_config = TokenizerConfig::load(&dir)?;
        let path = folder.tokenizer_path();
        let mut tokenizer = Tokenizer::from_file(&path)
            .map_err(|e| EngineError::TokenizerLoad { path: path.clone(), reason: e.to_string() })?;
        // Prompts are one sequence, never padded; length is checked against the context instead.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| EngineError::TokenizerLoad { path: path.clone(), reason: e.to_string() })?;
        // A template that does not compile is reported when a chat is asked for, not at load:
        // the model still generates from plain text.
        let (chat, chat_error) = match &tokenizer_config.chat_template {
            Some(source) => match ChatTemplate::new(
                source,
                tokenizer_config.bos_token.as_deref(),
                tokenizer_config.eos_token.as_deref(),
            ) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e.0)),
            },
            None => (None, None),
        };
        let session = runtime.session(&folder.model_path())?;
        let layout = Layout::read(&session, &config, &dir)?;
        let vocab = config
            .get("vocab_size")
            .and_then(serde_json::Value::as_u64)
            .map(|v| v as usize)
            .unwrap_or_else(|| tokenizer.get_vocab_size(true));
        tracing::debug!(model = %folder.name, ?layout, "generator loaded");
        Ok(Generator { folder, tokenizer, session: Mutex::new(session), layout, defaults, chat, chat_error, vocab })
    }

    pub fn folder(&self) -> &ModelFolder {
        &self.folder
    }

    /// Run `f` on the model's own ONNX Runtime session, for benchmarks that compare the loop with
    /// raw `session.run` calls and for listing the graph's inputs and outputs. Not for general use:
    /// it bypasses the generation loop.
    ///
    /// Runs there are made the way the loop makes them (subnormals flushed, see
    /// [`SubnormalsAsZero`]).
    pub fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        let _flushed = SubnormalsAsZero::enable();
        f(&mut self.session.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn name(&self) -> &str {
        &self.folder.name
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn defaults(&self) -> &GenerationConfig {
        &self.defaults
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Tokens of context (prompt and output together).
    pub fn context(&self) -> usize {
        self.folder.max_length
    }

    pub fn has_chat_template(&self) -> bool {
        self.chat.is_some()
    }

    /// The prompt text `messages` become under the model's chat template.
    pub fn render_chat(&self, messages: &[Message]) -> Result<String> {
        let Some(template) = &self.chat else {
            return Err(match &self.chat_error {
                Some(reason) => EngineError::ChatTemplate { model: self.folder.name.clone(), reason: reason.clone() },
                None => EngineError::NoChatTemplate { model: self.folder.name.clone() },
            });
        };
        template
            .render(messages, true)
            .map_err(|e| EngineError::ChatTemplate { model: self.folder.name.clone(), reason: e.0 })
    }

    /// The token ids a prompt becomes.
    pub fn prompt_ids(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        let (text, special) = match prompt {
            Prompt::Text(text) => (Cow::Borrowed(text.as_str()), true),
            // The template writes the special tokens itself (BOS included).
            Prompt::Chat(messages) => (Cow::Owned(self.render_chat(messages)?), false),
        };
        let encoding = self
            .tokenizer
            .encode_fast(text.as_ref(), special)
            .map_err(|e| EngineError::Tokenize { model: self.folder.name.clone(), reason: e.to_string() })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The sampling settings `params` resolve to over the model's defaults.
    pub fn sampling(&self, params: &GenerateParams) -> Result<Sampling> {
        let d = &self.defaults;
        let temperature = params.temperature.unwrap_or(if d.do_sample { d.temperature } else { 0.0 });
        let s = Sampling {
            temperature,
            top_k: params.top_k.unwrap_or(if d.do_sample { d.top_k } else { 0 }),
            top_p: params.top_p.unwrap_or(if d.do_sample { d.top_p } else { 1.0 }),
            repetition_penalty: params.repetition_penalty.unwrap_or(d.repetition_penalty),
            seed: params.seed.unwrap_or_else(crate::util::random_u64),
        };
        let bad = |what: String| Err(EngineError::InvalidParams(what));
        if !(s.temperature >= 0.0 && s.temperature.is_finite()) {
            return bad(format!("temperature must be a number ≥ 0 (0 = greedy), not {}", s.temperature));
        }
        if !(s.top_p > 0.0 && s.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], not {}", s.top_p));
        }
        if !(s.repetition_penalty > 0.0 && s.repetition_penalty.is_finite()) {
            return bad(format!("repetition_penalty must be > 0 (1 = off), not {}", s.repetition_penalty));
        }
        Ok(s)
    }

    /// Generate a continuation of `prompt`. `on_text` receives the text as it is produced, in
    /// pieces that are always whole characters; setting `cancel` ends the generation after the
    /// current step with [`FinishReason::Cancelled`] and what was produced so far.
    pub fn generate(
        &self,
        prompt: &Prompt,
        params: &GenerateParams,
        cancel: &AtomicBool,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        let started = Instant::now();
        let prompt_ids = self.prompt_ids(prompt)?;
        self.generate_ids(&prompt_ids, params, cancel, on_text, started)
    }

    /// [`Generator::generate`] from token ids (timing starts at `started`).
    pub fn generate_ids(
        &self,
        prompt_ids: &[u32],
        params: &GenerateParams,
        cancel: &AtomicBool,
        on_text: &mut dyn FnMut(&str),
        started: Instant,
    ) -> Result<Generation> {
        let sampling = self.sampling(params)?;
        let context = self.context();
        if prompt_ids.is_empty() {
            return Err(EngineError::InvalidParams(
                "the prompt is empty (no tokens) and this model adds no start token; give it some text".into(),
            ));
        }
        if prompt_ids.len() >= context {
            return Err(EngineError::PromptTooLong {
                model: self.folder.name.clone(),
                tokens: prompt_ids.len(),
                context,
            });
        }
        let wanted = params.max_new_tokens.or(self.defaults.max_new_tokens).unwrap_or(DEFAULT_MAX_NEW_TOKENS);
        let max_new = wanted.min(context - prompt_ids.len());
        let no_cache = params.no_cache || self.layout.layers == 0;

        let mut sampler = Sampler::new(sampling.clone(), self.vocab, prompt_ids);
        let mut text = TextStream::new(&self.tokenizer);
        let mut stops = StopText::new(&params.stop);
        let mut ids: Vec<i64> = prompt_ids.iter().map(|&id| i64::from(id)).collect();
        let mut generated = Vec::new();
        let mut past: Option<Vec<DynValue>> = None;
        let mut logits = Vec::with_capacity(self.vocab);
        let mut first_token = None;
        let mut finish = FinishReason::Length;
        let mut stopped_by_text = false;
        let ones = vec![1i64; context];
        let fail = |reason: String| EngineError::Inference { model: self.folder.name.clone(), reason };

        while generated.len() < max_new {
            if cancel.load(Ordering::Relaxed) {
                finish = FinishReason::Cancelled;
                break;
            }
            let (feed_from, cache) = match past.take() {
                Some(cache) if !no_cache => (ids.len() - 1, Some(cache)),
                _ => (0, None),
            };
            let presents = self.step(&ids, feed_from, cache, &ones[..ids.len()], &mut logits, !no_cache)?;
            past = presents;
            let next = sampler.sample(&mut logits);
            first_token.get_or_insert_with(|| started.elapsed());
            if self.defaults.eos_token_ids.contains(&next) {
                finish = FinishReason::Stop;
                break;
            }
            sampler.observe(next);
            generated.push(next);
            ids.push(i64::from(next));
            if let Some(piece) = text.push(next).map_err(fail)? {
                let (shown, stopped) = stops.push(&piece);
                if !shown.is_empty() {
                    on_text(shown);
                }
                if stopped {
                    finish = FinishReason::Stop;
                    stopped_by_text = true;
                    break;
                }
            }
        }
        if !stopped_by_text {
            // Release what was held back: an incomplete character (as U+FFFD), a false start
            // of a stop sequence.
            if let Some(piece) = text.finish().map_err(fail)? {
                let (shown, _) = stops.push(&piece);
                if !shown.is_empty() {
                    on_text(shown);
                }
            }
            let rest = stops.finish();
            if !rest.is_empty() {
                on_text(rest);
            }
        }
        Ok(Generation {
            text: stops.text().to_string(),
            usage: Usage { prompt_tokens: prompt_ids.len(), completion_tokens: generated.len() },
            token_ids: generated,
            finish_reason: finish,
            seed: sampling.seed,
            sampled: !sampling.is_greedy(),
            time_to_first_token: first_token.unwrap_or_else(|| started.elapsed()),
            total_time: started.elapsed(),
        })
    }

    /// One `session.run` over `ids[feed_from..]` with `past` as the cache (empty when `None`).
    /// Leaves the last position's logits in `logits`; returns the new cache when `keep` is set.
    fn step(
        &self,
        ids: &[i64],
        feed_from: usize,
        past: Option<Vec<DynValue>>,
        mask: &[i64],
        logits: &mut Vec<f32>,
        keep: bool,
    ) -> Result<Option<Vec<DynValue>>> {
        let fail = |reason: String| EngineError::Inference { model: self.folder.name.clone(), reason };
        let seq = ids.len() - feed_from;
        let positions: Vec<i64> = (feed_from as i64..ids.len() as i64).collect();
        let l = &self.layout;
        let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(4 + 2 * l.layers);
        fn view(shape: [usize; 2], data: &[i64]) -> std::result::Result<TensorRef<'_, i64>, String> {
            TensorRef::from_array_view((shape, data)).map_err(|e| e.to_string())
        }
        feeds.push(("input_ids".into(), view([1, seq], &ids[feed_from..]).map_err(fail)?.into()));
        feeds.push(("attention_mask".into(), view([1, ids.len()], mask).map_err(fail)?.into()));
        if l.position_ids {
            feeds.push(("position_ids".into(), view([1, seq], &positions).map_err(fail)?.into()));
        }
        if l.use_cache_branch {
            let branch = Tensor::from_array(([1usize], vec![past.is_some()])).map_err(|e| fail(e.to_string()))?;
            feeds.push(("use_cache_branch".into(), branch.into()));
        }
        match past {
            // The previous step's outputs, moved in as they are.
            Some(values) => {
                let mut values = values.into_iter();
                for name in l.past_names.iter().flatten() {
                    let value = values.next().ok_or_else(|| fail("the KV cache lost a tensor".into()))?;
                    feeds.push((Cow::Borrowed(name.as_str()), value.into()));
                }
            }
            None => {
                for name in l.past_names.iter().flatten() {
                    feeds.push((Cow::Borrowed(name.as_str()), self.empty_past().map_err(fail)?));
                }
            }
        }
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let _flushed = SubnormalsAsZero::enable();
        let mut outputs = session.run(feeds).map_err(|e| fail(e.to_string()))?;
        let value = outputs.get("logits").ok_or_else(|| fail("the model produced no `logits`".into()))?;
        logits.clear();
        let (shape, rows) = if l.logits_f16 {
            let (shape, data) = value.try_extract_tensor::<half::f16>().map_err(|e| fail(e.to_string()))?;
            let vocab = last_dim(shape);
            logits.extend(data[data.len().saturating_sub(vocab)..].iter().map(|x| x.to_f32()));
            (shape.to_vec(), data.len())
        } else {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(|e| fail(e.to_string()))?;
            let vocab = last_dim(shape);
            logits.extend_from_slice(&data[data.len().saturating_sub(vocab)..]);
            (shape.to_vec(), data.len())
        };
        if logits.is_empty() || rows % logits.len() != 0 {
            return Err(fail(format!("output `logits` has shape {shape:?}; expected [1, sequence, vocabulary]")));
        }
        if !keep {
            return Ok(None);
        }
        let mut cache = Vec::with_capacity(2 * l.layers);
        for names in &l.present_names {
            for name in names {
                cache.push(outputs.remove(name).ok_or_else(|| fail(format!("the model produced no `{name}`")))?);
            }
        }
        Ok(Some(cache))
    }

    /// A `[1, kv_heads, 0, head_dim]` tensor: the cache before the first step.
    fn empty_past(&self) -> std::result::Result<SessionInputValue<'static>, String> {
        let shape = [1usize, self.layout.kv_heads, 0, self.layout.head_dim];
        Ok(match self.layout.kv_type {
            KvType::F32 => Tensor::<f32>::from_array((shape, Vec::new())).map_err(|e| e.to_string())?.into(),
            KvType::F16 => Tensor::<half::f16>::from_array((shape, Vec::new())).map_err(|e| e.to_string())?.into(),
        })
    }
}

fn last_dim(shape: &[i64]) -> usize {
    shape.last().and_then(|&d| usize::try_from(d).ok()).unwrap_or(0)
}
