//! The one gate every request passes: `Host` allow-list (DNS rebinding), `Origin` allow-list
//! (cross-site requests from browser pages), then the bearer token. Also times each request for
//! `/metrics`. CORS stays closed: no `Access-Control-Allow-*` header is ever sent, so a page on
//! another origin can neither read answers nor send the token.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;
use crate::token::constant_time_eq;

/// Paths open without the token (nothing in them is private).
const PUBLIC: &[&str] = &["/healthz", "/openapi.json"];

pub async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let response = match check(&state, request.headers(), request.uri().path()) {
        Ok(()) => next.run(request).await,
        Err(err) => {
            tracing::warn!(%route, status = err.status.as_u16(), reason = %err.message, "refused");
            err.into_response()
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    state.metrics.observe_request(&route, &method, status, seconds);
    let call = response.headers().get(crate::v1::CALL_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::info!(%method, %route, status, ms = seconds * 1000.0, call, "request");
    response
}

fn check(state: &AppState, headers: &HeaderMap, path: &str) -> Result<(), ApiError> {
    let config = &state.config;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
    match host {
        Some(host) if config.allowed_hosts.contains(&host) => {}
        Some(host) => {
            return Err(ApiError::forbidden(format!(
                "requests for host `{host}` are refused (this server answers to {}); start it with --allow-host {host} if that name is yours",
                config.allowed_hosts.join(", ")
            )))
        }
        None => return Err(ApiError::invalid("the request has no Host header")),
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
        if !config.allowed_origins.contains(&origin) {
            return Err(ApiError::forbidden(format!(
                "requests from pages on `{origin}` are refused; start the server with --allow-origin {origin} to let that page in"
            )));
        }
    }
    // The UI's files hold no data; the API calls they make carry the token.
    if PUBLIC.contains(&path) || !crate::ui::is_api_path(path) {
        return Ok(());
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "this API needs `Authorization: Bearer <token>`; `benchtop token` prints the token",
        ));
    };
    let given = value.to_str().unwrap_or("").strip_prefix("Bearer ").unwrap_or("").trim();
    if !constant_time_eq(given.as_bytes(), config.token.as_bytes()) {
        return Err(ApiError::unauthorized("the bearer token is wrong; `benchtop token` prints the right one"));
    }
    Ok(())
}
