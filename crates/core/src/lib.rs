//! Benchtop's domain, with no knowledge of HTTP servers, desktop shells or terminals.
//!
//! - [`engine`]: local ONNX inference — finding ONNX Runtime, reading model folders, tokenising,
//!   batching, pooling and scoring.
//! - [`store`]: the feedback log — test sets, runs, results, feedback — in SQLite.
//! - [`dirs`]: where Benchtop keeps its cache (runtime library, default models) and data.
//!
//! Everything here is synchronous and may block on inference: async callers run it on blocking
//! threads (`tokio::task::spawn_blocking`), never on the executor.

pub mod dirs;
pub mod engine;
pub mod store;
