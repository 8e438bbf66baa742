//! The built UI (`ui/dist`) at `/`: browser mode. Files are served as they are; any other page
//! path gets `index.html` (the UI routes on the client). Unknown `/api/…` and `/v1/…` paths stay
//! JSON 404s. The page is public (it holds no data; the API behind it needs the token) and is
//! sent with a strict Content-Security-Policy, so even a model's output that slipped past the
//! UI's sanitising could not load or run a script.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

/// The policy every UI page is sent with (the desktop window uses the same one).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// Paths that belong to the APIs, never to the UI.
pub fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/v1/") || path == "/api" || path == "/v1" || path == "/metrics"
}

/// Where the built UI is: `BENCHTOP_UI_DIR`, else `ui/dist` of the source tree this was built
/// from (a checkout), else none.
pub fn find_ui_dir(explicit: Option<&Path>) -> Option<PathBuf> {
    let candidates = [
        explicit.map(Path::to_path_buf),
        std::env::var_os("BENCHTOP_UI_DIR").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/dist")),
    ];
    candidates.into_iter().flatten().find(|dir| dir.join("index.html").is_file())
}

pub async fn serve(dir: Option<&Path>, request: Request) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return crate::v1::method_not_allowed(request).await.into_response();
    }
    let Some(dir) = dir else {
        return (
            StatusCode::NOT_FOUND,
            Html(
                "<!doctype html><meta charset=utf-8><title>Benchtop</title><h1>The Benchtop UI is not built</h1>\
                 <p>The API is running. Build the UI with <code>./dev start</code> (or <code>npm run build</code> in \
                 <code>ui/</code>), or point <code>BENCHTOP_UI_DIR</code> at a built <code>ui/dist</code>.</p>",
            ),
        )
            .into_response();
    };
    let files = ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")));
    let mut response = match files.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
