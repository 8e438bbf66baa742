//! Benchtop's domain, with no knowledge of HTTP servers, desktop shells or terminals.
//!
//! - [`engine`]: local ONNX inference — finding ONNX Runtime, reading model folders, tokenising,
//!   batching, pooling and scoring.
//! - [`models`]: validating, adding, removing and downloading model folders.
//! - [`providers`]: remote LLM clients (OpenAI-compatible, Anthropic).
//! - [`runs`]: comparison runs — test set × prompt × targets, validation, assertions, cache.
//! - [`store`]: the feedback log — test sets, runs, results, feedback — in SQLite.
//! - [`dirs`]: where Benchtop keeps its cache (runtime library, default models) and data.
//!
//! Everything here is synchronous and may block on inference: async callers run it on blocking
//! threads (`tokio::task::spawn_blocking`), never on the executor. The one exception is network
//! I/O ([`models::hub`], [`providers`]), which is async.

pub mod dirs;
pub mod engine;
pub mod models;
pub mod providers;
pub mod runs;
pub mod store;
mod util;
