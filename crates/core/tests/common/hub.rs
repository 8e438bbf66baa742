//! A stand-in for the Hugging Face Hub on 127.0.0.1: the two endpoints a download uses
//! (`/api/models/{repo}/revision/{rev}?blobs=true` and `/{repo}/resolve/{rev}/{path}`), with
//! range requests, gated repositories, and faults on demand (a connection cut mid-file, a byte
//! flipped in transit). Used by the core tests and, through `#[path]`, by the CLI tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use serde_json::json;
use sha1::Digest as _;

include!("serve_local.rs");

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Files larger than this are listed as LFS files (sha256); smaller ones as git blobs (sha1).
const LFS_FROM: usize = 10_000;

#[derive(Default)]
pub struct HubState {
    pub repo: String,
    pub files: BTreeMap<String, Vec<u8>>,
    /// When set, requests must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Path → bytes to send before breaking the connection (once).
    pub cut_after: HashMap<String, usize>,
    /// Paths whose content is served with one byte changed.
    pub corrupt: HashSet<String>,
    /// Every file request: path and its Range header.
    pub requests: Vec<(String, Option<String>)>,
}

pub struct MockHub {
    pub url: String,
    state: Arc<Mutex<HubState>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl MockHub {
    /// Serves `repo` with the files of `fixture_dir`, the graph under `onnx/` (as the
    /// onnx-community repositories lay it out), and a second graph to choose with `--file`.
    pub fn with_fixture(repo: &str, fixture_dir: &Path) -> MockHub {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(fixture_dir).expect("fixture folder") {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(entry.path()).expect("read fixture file");
            if name == "model.onnx" {
                files.insert("onnx/model_fp16.onnx".to_string(), bytes.clone());
                files.insert("onnx/model.onnx".to_string(), bytes);
            } else {
                files.insert(name, bytes);
            }
        }
        files.insert("README.md".into(), b"# a model card, not downloaded\n".to_vec());
        MockHub::start(HubState { repo: repo.into(), files, ..HubState::default() })
    }

    pub fn start(state: HubState) -> MockHub {
        let state = Arc::new(Mutex::new(state));
        let app = Router::new()
            .route("/api/models/{owner}/{name}/revision/{rev}", get(listing))
            .route("/{owner}/{name}/resolve/{rev}/{*path}", get(file))
            .with_state(Arc::clone(&state));
        let (url, stop) = serve_local(app);
        MockHub { url, state, _stop: stop }
    }

    pub fn state(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn authorised(state: &HubState, headers: &HeaderMap) -> bool {
    match &state.token {
        None => true,
        Some(token) => {
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(format!("Bearer {token}").as_str())
        }
    }
}

fn refuse() -> Response {
    (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "Invalid credentials in Authorization header"})))
        .into_response()
}

async fn listing(
    State(state): State<Arc<Mutex<HubState>>>,
    UrlPath((owner, name, rev)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let state = state.lock().unwrap_or_else(|p| p.into_inner());
    if format!("{owner}/{name}") != state.repo || !(rev == "main" || rev == COMMIT) {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": "Repository not found"}))).into_response();
    }
    if !authorised(&state, &headers) {
        return refuse();
    }
    let siblings: Vec<_> = state
        .files
        .iter()
        .map(|(path, bytes)| {
            let blob = sha1::Sha1::new()
                .chain_update(format!("blob {}\0", bytes.len()).as_bytes())
                .chain_update(bytes)
                .finalize();
            let mut sibling = json!({"rfilename": path, "size": bytes.len(), "blobId": hex(&blob)});
            if bytes.len() >= LFS_FROM {
                let sha256 = sha2::Sha256::digest(bytes);
                sibling["lfs"] = json!({"sha256": hex(&sha256), "size": bytes.len(), "pointerSize": 134});
            }
            sibling
        })
        .collect();
    axum::Json(json!({"id": state.repo, "sha": COMMIT, "private": state.token.is_some(), "siblings": siblings}))
        .into_response()
}

async fn file(
    State(state): State<Arc<Mutex<HubState>>>,
    UrlPath((owner, name, rev, path)): UrlPath<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
    state.requests.push((path.clone(), range.clone()));
    if format!("{owner}/{name}") != state.repo || rev != COMMIT {
        return StatusCode::NOT_FOUND.into_response();
    }
    if !authorised(&state, &headers) {
        return refuse();
    }
    let Some(mut bytes) = state.files.get(&path).cloned() else {
        return (StatusCode::NOT_FOUND, "Entry not found").into_response();
    };
    if state.corrupt.contains(&path) {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
    }
    let total = bytes.len();
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let (status, body_bytes) = match start {
        Some(start) if start >= total => {
            return (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{total}"))])
                .into_response()
        }
        Some(start) => (StatusCode::PARTIAL_CONTENT, bytes[start..].to_vec()),
        None => (StatusCode::OK, bytes),
    };
    let length = body_bytes.len();
    let mut response = match state.cut_after.remove(&path) {
        // Promise the whole length, send part of it, then fail the stream: the connection drops.
        Some(cut) => {
            let sent = body_bytes[..cut.min(length)].to_vec();
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                vec![Ok(sent), Err(std::io::Error::other("connection cut by the test"))];
            // The pause lets the first part reach the client before the connection drops.
            let stream = futures_util::stream::iter(chunks).then(|item| async move {
                if item.is_err() {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                item
            });
            Response::new(Body::from_stream(stream))
        }
        None => Response::new(Body::from(body_bytes)),
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, length.into());
    headers.insert(header::ACCEPT_RANGES, header::HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        let first = total - length;
        if let Ok(value) = format!("bytes {first}-{}/{total}", total - 1).parse() {
            headers.insert(header::CONTENT_RANGE, value);
        }
    }
    response
}
