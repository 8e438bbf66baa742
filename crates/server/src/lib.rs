//! Benchtop's HTTP face, over `benchtop-core`:
//!
//! - the local inference API under `/v1/…`: `predict` (classification), OpenAI-compatible
//!   `embeddings` and `chat/completions` (SSE streaming), `models`, and `feedback` on any logged
//!   call by the id every response carries;
//! - the UI's API under `/api/…`, each handler a thin translation of one core operation;
//! - `/healthz`, `/metrics`, `/openapi.json`.
//!
//! Every request passes the same guard first: `Host` and `Origin` checked against an allow-list
//! (DNS rebinding and cross-site requests from browser pages are refused), then the bearer token.
//! Inputs are validated before any model runs; embedding and classification requests to one
//! model are batched ([`batch`]); every call is recorded in the feedback log's live-traffic run
//! through the store's writer without holding up the response ([`traffic`]).

mod api;
mod batch;
mod error;
mod guard;
mod jobs;
mod metrics;
mod state;
pub mod token;
mod traffic;
pub mod ui;
mod v1;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use batch::BatchOptions;
pub use error::ApiError;
pub use state::{AppState, Limits, ServerConfig, StartError};

/// The OpenAPI 3.1 description of both APIs, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route: (method, path). `/openapi.json` documents each one (a test checks both ways).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/models"),
    ("POST", "/v1/predict"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/feedback"),
    ("GET", "/api/models"),
    ("POST", "/api/models"),
    ("POST", "/api/models/validate"),
    ("POST", "/api/models/download"),
    ("GET", "/api/test-sets"),
    ("GET", "/api/test-sets/{id}/cases"),
    ("GET", "/api/runs"),
    ("GET", "/api/runs/{id}"),
    ("GET", "/api/runs/{id}/results"),
    ("GET", "/api/results/{id}/feedback"),
    ("POST", "/api/feedback"),
    ("GET", "/api/history"),
    ("GET", "/api/providers"),
    ("PUT", "/api/providers/{name}"),
    ("DELETE", "/api/providers/{name}"),
    ("POST", "/api/runs"),
    ("POST", "/api/playground"),
    ("POST", "/api/test-sets"),
    ("DELETE", "/api/test-sets/{id}"),
    ("POST", "/api/test-sets/{id}/cases"),
    ("POST", "/api/test-sets/{id}/import"),
    ("PUT", "/api/cases/{id}"),
    ("DELETE", "/api/cases/{id}"),
    ("GET", "/api/review"),
    ("GET", "/api/settings"),
    ("PUT", "/api/prices"),
    ("PUT", "/api/providers/{name}/key"),
    ("POST", "/api/exports"),
    ("GET", "/api/exports/{name}/files/{file}"),
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/{id}"),
    ("GET", "/api/jobs/{id}/events"),
    ("POST", "/api/jobs/{id}/cancel"),
];

/// The whole application: routes, the guard, limits and metrics, over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    routes(Arc::clone(&state))
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), guard::guard))
        .with_state(state)
}

/// The same handlers for a caller inside this process (the desktop shell's IPC): no network, so
/// no Host/Origin/token guard, and no UI files. Limits and validation are the same.
pub fn in_process_router(state: Arc<AppState>) -> Router {
    routes(Arc::clone(&state)).fallback(v1::not_found).with_state(state)
}

fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let body_limit = state.config.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(v1::healthz))
        .route("/metrics", get(v1::metrics))
        .route("/openapi.json", get(v1::openapi))
        .route("/v1/models", get(v1::models))
        .route("/v1/predict", post(v1::predict))
        .route("/v1/embeddings", post(v1::embeddings))
        .route("/v1/chat/completions", post(v1::chat_completions))
        .route("/v1/feedback", post(v1::feedback))
        .route("/api/models", get(api::models).post(api::add_model))
        .route("/api/models/validate", post(api::validate_model))
        .route("/api/models/download", post(jobs::start_download))
        .route("/api/test-sets", get(api::test_sets).post(api::create_test_set))
        .route("/api/test-sets/{id}", axum::routing::delete(api::delete_test_set))
        .route("/api/test-sets/{id}/cases", get(api::cases).post(api::add_cases))
        .route("/api/test-sets/{id}/import", post(api::import_cases))
        .route("/api/cases/{id}", axum::routing::put(api::update_case).delete(api::delete_case))
        .route("/api/playground", post(jobs::playground))
        .route("/api/review", get(api::review))
        .route("/api/settings", get(api::settings))
        .route("/api/prices", axum::routing::put(api::put_prices))
        .route("/api/providers/{name}/key", axum::routing::put(api::put_provider_key))
        .route("/api/runs", get(api::runs).post(jobs::start_run))
        .route("/api/exports", post(jobs::start_export))
        .route("/api/exports/{name}/files/{file}", get(jobs::export_file))
        .route("/api/providers", get(api::providers))
        .route("/api/providers/{name}", axum::routing::put(api::put_provider).delete(api::delete_provider))
        .route("/api/jobs", get(jobs::jobs))
        .route("/api/jobs/{id}", get(jobs::job))
        .route("/api/jobs/{id}/events", get(jobs::events))
        .route("/api/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/runs/{id}/results", get(api::run_results))
        .route("/api/results/{id}/feedback", get(api::result_feedback))
        .route("/api/feedback", post(api::add_feedback))
        .route("/api/history", get(api::history))
        .method_not_allowed_fallback(v1::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
}

/// Unknown API paths are JSON 404s; everything else is the UI's.
async fn fallback(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if ui::is_api_path(request.uri().path()) {
        return v1::not_found(request).await.into_response();
    }
    ui::serve(state.config.ui_dir.as_deref(), request).await
}

/// Serve until `shutdown` resolves, then stop taking connections, let in-flight requests finish
/// (streams included), stop the batch workers and flush the feedback log.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        // Small writes (SSE events, short JSON answers) go out at once.
        let _ = tcp.set_nodelay(true);
    });
    let app = router(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>();
    let began = Arc::new(tokio::sync::Notify::new());
    let signal = {
        let began = Arc::clone(&began);
        async move {
            shutdown.await;
            began.notify_one();
        }
    };
    let drain = state.config.drain_timeout;
    let served = axum::serve(listener, app).with_graceful_shutdown(signal);
    // In-flight requests get `drain_timeout` to finish; a stuck one does not keep the process up.
    let result = tokio::select! {
        result = served => result,
        _ = async { began.notified().await; tokio::time::sleep(drain).await } => {
            tracing::warn!(seconds = drain.as_secs_f64(), "requests still running after the drain timeout; stopping anyway");
            Ok(())
        }
    };
    state.shutdown().await;
    result
}
