//! Remote LLM providers: the OpenAI chat completions format (OpenAI and every server that copies
//! it) and the Anthropic Messages API, streamed over SSE or not, with bounded retries that honour
//! the server's `retry-after`, a per-provider concurrency limit, timeouts, and usage → cost.
//!
//! Cancel a call by dropping its future. Keys ([`ApiKey`]) come from the OS keychain or an
//! environment variable and never appear in `Debug` output, errors or logs: error text taken
//! from a server's body has the key masked before it is kept.

mod anthropic;
mod keys;
mod openai;
mod prices;
pub mod retry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;

pub use crate::engine::{Message, Role};
pub use keys::{env_name, keychain_delete, keychain_set, ApiKey, KeySource, KEYCHAIN_SERVICE};
pub use prices::{Price, PriceTable};
pub use retry::RetryPolicy;

/// Which wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// `POST {base_url}/chat/completions`, `Authorization: Bearer KEY`.
    #[serde(alias = "openai-compatible")]
    OpenAi,
    /// `POST {base_url}/v1/messages`, `x-api-key: KEY`.
    Anthropic,
}

/// How to reach a provider. Keys are not part of it: see [`ApiKey::resolve`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// What the user calls it (`openai`, `ollama`, `groq`…); keys are looked up by it.
    pub name: String,
    pub kind: ProviderKind,
    /// E.g. `https://api.openai.com/v1`, `http://localhost:11434/v1`, `https://api.anthropic.com`.
    pub base_url: String,
    /// The environment variable holding the key [default: `OPENAI_API_KEY` /
    /// `ANTHROPIC_API_KEY` for providers named `openai` / `anthropic`, else `<NAME>_API_KEY`].
    #[serde(default)]
    pub key_env: Option<String>,
    /// Local servers (Ollama, llama.cpp) need no key.
    #[serde(default)]
    pub no_key: bool,
    /// Requests in flight at once to this provider.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: f64,
    /// Longest silence while waiting for response bytes (headers or the next streamed chunk).
    #[serde(default = "default_read_timeout_s")]
    pub read_timeout_s: f64,
    /// Attempts in all, retries included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_concurrency() -> usize {
    8
}
fn default_connect_timeout_s() -> f64 {
    10.0
}
fn default_read_timeout_s() -> f64 {
    120.0
}
fn default_attempts() -> u32 {
    RetryPolicy::default().max_attempts
}

impl ProviderConfig {
    pub fn new(name: &str, kind: ProviderKind, base_url: &str) -> ProviderConfig {
        ProviderConfig {
            name: name.into(),
            kind,
            base_url: base_url.into(),
            key_env: None,
            no_key: false,
            max_concurrency: default_concurrency(),
            connect_timeout_s: default_connect_timeout_s(),
            read_timeout_s: default_read_timeout_s(),
            max_attempts: default_attempts(),
        }
    }
}

/// One chat call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    #[serde(default)]
    pub system: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub stop: Vec<String>,
    /// Sent where the API takes one (OpenAI-compatible); Anthropic has none.
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stream: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
}

/// A finished call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatResponse {
    pub text: String,
    /// As the provider says it (`stop`, `length`, `end_turn`, `max_tokens`…).
    pub finish_reason: Option<String>,
    pub usage: Option<TokenUsage>,
    /// From the price table, when the model is in it and usage was reported.
    pub cost_usd: Option<f64>,
    /// Until the first streamed text (streamed calls only), from the start of the last attempt.
    pub ttft: Option<Duration>,
    /// From the call to the end, retries and waits included.
    pub latency: Duration,
    pub attempts: u32,
}

/// A problem in what a server sent (not the transport).
#[derive(Debug, Clone)]
pub struct WireError(pub String);

/// What a stream event means.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Delta { text: String, finish: Option<String>, usage: Option<TokenUsage> },
    Done,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error(
        "no API key for provider `{provider}`.\n\
         Fix: run `benchtop keys set {provider}` (stored in the OS keychain), or set {env}."
    )]
    NoKey { provider: String, env: String },

    #[error(
        "`{provider}` refused the API key ({status}).\n\
         Fix: check the key (`benchtop keys set {provider}` replaces it) and that it may use this model."
    )]
    Unauthorized { provider: String, status: u16 },

    #[error("`{provider}` rejected the request ({status}): {message}")]
    Rejected { provider: String, status: u16, message: String },

    #[error("`{provider}` is rate limiting: {detail} after {attempts} attempt(s).\nFix: lower the concurrency for this provider, or try again later.")]
    RateLimited { provider: String, attempts: u32, detail: String },

    #[error("`{provider}` failed ({status}) after {attempts} attempt(s): {message}")]
    Server { provider: String, status: u16, attempts: u32, message: String },

    #[error("`{provider}` did not answer in time ({what}) after {attempts} attempt(s)")]
    Timeout { provider: String, attempts: u32, what: String },

    #[error("cannot reach `{provider}` at {url}: {reason} (after {attempts} attempt(s))")]
    Connect { provider: String, url: String, reason: String, attempts: u32 },

    #[error("`{provider}` sent something Benchtop cannot read: {reason} (after {attempts} attempt(s))")]
    Protocol { provider: String, reason: String, attempts: u32 },

    #[error("`{provider}` is misconfigured: {problem}")]
    Config { provider: String, problem: String },
}

impl ProviderError {
    /// Worth another attempt (given attempts are left)?
    fn retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Server { .. }
                | ProviderError::Timeout { .. }
                | ProviderError::Connect { .. }
                | ProviderError::Protocol { .. }
        )
    }

    fn set_attempts(&mut self, n: u32) {
        match self {
            ProviderError::RateLimited { attempts, .. }
            | ProviderError::Server { attempts, .. }
            | ProviderError::Timeout { attempts, .. }
            | ProviderError::Connect { attempts, .. }
            | ProviderError::Protocol { attempts, .. } => *attempts = n,
            _ => {}
        }
    }
}

/// A configured provider: an HTTP client, a key, a concurrency limit. Cheap to clone (shared).
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

struct Inner {
    config: ProviderConfig,
    key: Option<ApiKey>,
    client: reqwest::Client,
    url: reqwest::Url,
    limit: Semaphore,
    retry: RetryPolicy,
    prices: PriceTable,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("config", &self.inner.config)
            .field("key", &self.inner.key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Provider {
    /// A provider with `key` (see [`ApiKey::resolve`]); refuses a provider that needs a key and
    /// has none.
    pub fn new(config: ProviderConfig, key: Option<ApiKey>, prices: PriceTable) -> Result<Provider, ProviderError> {
        let problem = |problem: String| ProviderError::Config { provider: config.name.clone(), problem };
        if key.is_none() && !config.no_key {
            return Err(ProviderError::NoKey { provider: config.name.clone(), env: keys::env_name(&config) });
        }
        let mut base = reqwest::Url::parse(config.base_url.trim_end_matches('/'))
            .map_err(|e| problem(format!("base_url `{}` is not a URL ({e})", config.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(problem(format!("base_url `{}` must be http:// or https://", config.base_url)));
        }
        // Join relative paths under the base, whatever its trailing slash.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let path = match config.kind {
            ProviderKind::OpenAi => openai::path(),
            ProviderKind::Anthropic => anthropic::path(),
        };
        let url = base.join(path).map_err(|e| problem(e.to_string()))?;
        let seconds = |s: f64, what: &str| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| problem(format!("{what} must be a positive number of seconds")))
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("benchtop/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(seconds(config.connect_timeout_s, "connect_timeout_s")?)
            .read_timeout(seconds(config.read_timeout_s, "read_timeout_s")?)
            .build()
            .map_err(|e| problem(e.to_string()))?;
        if config.max_concurrency == 0 || config.max_attempts == 0 {
            return Err(problem("max_concurrency and max_attempts must be at least 1".into()));
        }
        let retry = RetryPolicy { max_attempts: config.max_attempts, ..RetryPolicy::default() };
        let limit = Semaphore::new(config.max_concurrency);
        Ok(Provider { inner: Arc::new(Inner { config, key, client, url, limit, retry, prices }) })
    }

    /// Replace the retry policy (tests use short waits).
    pub fn with_retry(self, retry: RetryPolicy) -> Provider {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            config: shared.config.clone(),
            key: shared.key.clone(),
            client: shared.client.clone(),
            url: shared.url.clone(),
            limit: Semaphore::new(shared.config.max_concurrency),
            retry: shared.retry.clone(),
            prices: shared.prices.clone(),
        });
        Provider { inner: Arc::new(Inner { retry, ..inner }) }
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.inner.config
    }

    /// One chat call, retried as the policy allows. Streamed text is handed to `on_text` as it
    /// arrives; a stream that fails after text was shown is not retried (the text cannot be
    /// taken back), so the caller sees an error rather than a repeated beginning.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, ProviderError> {
        let started = Instant::now();
        let inner = &self.inner;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut shown = false;
            let outcome = {
                // The permit is held for the attempt only, not across the wait before a retry.
                let _permit = inner.limit.acquire().await.map_err(|_| ProviderError::Protocol {
                    provider: inner.config.name.clone(),
                    reason: "the provider was shut down".into(),
                    attempts: attempt,
                })?;
                self.attempt(request, on_text, &mut shown).await
            };
            match outcome {
                Ok((text, finish_reason, usage, ttft)) => {
                    let cost_usd = usage.and_then(|u| inner.prices.cost(&request.model, u));
                    return Ok(ChatResponse {
                        text,
                        finish_reason,
                        usage,
                        cost_usd,
                        ttft,
                        latency: started.elapsed(),
                        attempts: attempt,
                    });
                }
                Err((mut err, wait)) => {
                    err.set_attempts(attempt);
                    if !err.retryable() || shown || attempt >= inner.retry.max_attempts {
                        tracing::debug!(provider = %inner.config.name, attempt, "giving up: {err}");
                        return Err(err);
                    }
                    let pause = match wait {
                        Some(asked) if asked > inner.retry.max_retry_after => {
                            return Err(ProviderError::RateLimited {
                                provider: inner.config.name.clone(),
                                attempts: attempt,
                                detail: format!("asked to wait {:.0} s", asked.as_secs_f64()),
                            });
                        }
                        Some(asked) => asked,
                        None => inner.retry.backoff(attempt, jitter()),
                    };
                    tracing::info!(provider = %inner.config.name, attempt, wait_ms = pause.as_millis() as u64, "retrying: {err}");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// One HTTP exchange. On failure, also the wait the server asked for.
    async fn attempt(
        &self,
        request: &ChatRequest,
        on_text: &mut (dyn FnMut(&str) + Send),
        shown: &mut bool,
    ) -> Result<(String, Option<String>, Option<TokenUsage>, Option<Duration>), (ProviderError, Option<Duration>)> {
        let inner = &self.inner;
        let name = || inner.config.name.clone();
        let body = match inner.config.kind {
            ProviderKind::OpenAi => openai::body(request),
            ProviderKind::Anthropic => anthropic::body(request),
        };
        let mut http = inner.client.post(inner.url.clone()).json(&body);
        match (inner.config.kind, &inner.key) {
            (ProviderKind::OpenAi, Some(key)) => http = http.bearer_auth(key.expose()),
            (ProviderKind::Anthropic, Some(key)) => http = http.header("x-api-key", key.expose()),
            (_, None) => {}
        }
        if inner.config.kind == ProviderKind::Anthropic {
            http = http.header("anthropic-version", anthropic::VERSION);
        }
        let started = Instant::now();
        let response = http.send().await.map_err(|e| (self.transport_error(&e), None))?;
        let status = response.status();
        if !status.is_success() {
            let wait = retry::retry_after(response.headers());
            let text = response.text().await.unwrap_or_default();
            let message = self.mask(&body_message(&text));
            let err = match status.as_u16() {
                401 | 403 => ProviderError::Unauthorized { provider: name(), status: status.as_u16() },
                429 => ProviderError::RateLimited { provider: name(), attempts: 0, detail: message },
                _ if retry::retryable(status) => {
                    ProviderError::Server { provider: name(), status: status.as_u16(), attempts: 0, message }
                }
                _ => ProviderError::Rejected { provider: name(), status: status.as_u16(), message },
            };
            return Err((err, wait));
        }
        let protocol = |reason: String| ProviderError::Protocol { provider: name(), reason, attempts: 0 };
        if !request.stream {
            let bytes = response.bytes().await.map_err(|e| (self.transport_error(&e), None))?;
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| (protocol(format!("the response is not valid JSON ({e})")), None))?;
            let parsed = match inner.config.kind {
                ProviderKind::OpenAi => openai::parse(&value),
                ProviderKind::Anthropic => anthropic::parse(&value),
            };
            let (text, finish, usage) = parsed.map_err(|e| (protocol(self.mask(&e.0)), None))?;
            return Ok((text, finish, usage, None));
        }
        let mut events = response.bytes_stream().eventsource();
        let (mut text, mut finish, mut usage, mut ttft) = (String::new(), None, None::<TokenUsage>, None);
        let mut done = false;
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| match e {
                eventsource_stream::EventStreamError::Transport(e) => (self.transport_error(&e), None),
                other => (protocol(format!("the event stream is malformed ({other})")), None),
            })?;
            let parsed = match inner.config.kind {
                ProviderKind::OpenAi => openai::event(&event.data),
                ProviderKind::Anthropic => anthropic::event(&event.event, &event.data),
            };
            match parsed.map_err(|e| (protocol(self.mask(&e.0)), None))? {
                StreamEvent::Done => {
                    done = true;
                    break;
                }
                StreamEvent::Delta { text: piece, finish: f, usage: u } => {
                    if !piece.is_empty() {
                        ttft.get_or_insert_with(|| started.elapsed());
                        *shown = true;
                        on_text(&piece);
                        text.push_str(&piece);
                    }
                    if f.is_some() {
                        finish = f;
                    }
                    if let Some(u) = u {
                        let current = usage.unwrap_or_default();
                        usage = Some(TokenUsage {
                            input: current.input.max(u.input),
                            output: current.output.max(u.output),
                        });
                    }
                }
            }
        }
        if !done {
            return Err((protocol("the stream ended before the answer was complete".into()), None));
        }
        Ok((text, finish, usage, ttft))
    }

    fn transport_error(&self, e: &reqwest::Error) -> ProviderError {
        let provider = self.inner.config.name.clone();
        if e.is_timeout() {
            let what = if e.is_connect() { "connecting" } else { "waiting for the response" };
            return ProviderError::Timeout { provider, attempts: 0, what: what.into() };
        }
        let reason = self.mask(&crate::util::error_chain(e));
        if e.is_connect() {
            return ProviderError::Connect { provider, url: self.inner.url.to_string(), reason, attempts: 0 };
        }
        ProviderError::Protocol { provider, reason: format!("the connection broke ({reason})"), attempts: 0 }
    }

    /// `text` with the key masked out, should a server (or a proxy) echo it back.
    fn mask(&self, text: &str) -> String {
        match &self.inner.key {
            Some(key) => key.mask_in(text),
            None => text.to_string(),
        }
    }
}

/// The human part of an error body: `error.message` (both APIs), else the text itself, shortened.
fn body_message(text: &str) -> String {
    let message = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("error").map(error_message))
        .unwrap_or_else(|| text.trim().to_string());
    let mut message: String = message.chars().take(300).collect();
    if message.is_empty() {
        message = "(no details)".into();
    }
    message
}

fn error_message(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        other => other.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| other.to_string()),
    }
}

/// A number in [0, 1) that differs between calls (for backoff jitter).
fn jitter() -> f64 {
    (crate::util::random_u64() >> 11) as f64 / (1u64 << 53) as f64
}
