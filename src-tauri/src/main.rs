//! Benchtop's desktop app: the workbench UI (ui/dist) in a Tauri v2 window.
//!
//! The window talks to Benchtop in process, through the same handlers `benchtop serve` answers
//! HTTP with ([`benchtop_server::in_process_router`]): `api` runs one request and returns its
//! status and JSON body, `api_stream` sends a streamed answer's events (runs, the playground)
//! over a Channel, `api_cancel` stops one. So every operation is defined once, in core, with one
//! validation and one error shape for both faces, and nothing listens on a port unless the user
//! turns the local inference API on in Settings (`server_set`) or runs `benchtop serve`.

#![cfg_attr(all(not(debug_assertions), target_os = "windows"), windows_subsystem = "windows")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::Context;
use axum::body::Body;
use axum::http::{header, Request};
use axum::response::IntoResponse;
use benchtop_core::dirs::Dirs;
use benchtop_core::engine::{Catalog, Engine, EngineOptions, Runtime, RuntimeOptions};
use benchtop_core::store::Store;
use benchtop_server::{ApiError, AppState, ServerConfig};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use tauri::ipc::Channel;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::{Manager, State};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// When the process started, for the "interactive after" figure.
static STARTED: OnceLock<Instant> = OnceLock::new();

/// The app state, registered once.
struct Desktop {
    /// Benchtop's core and the handlers over it, or why they could not be opened (ONNX Runtime
    /// missing, the feedback log unreadable…): then the window still opens, and every call
    /// answers 503 with that reason, so each page shows it where its data would be.
    core: Result<(Arc<AppState>, axum::Router), String>,
    streams: Mutex<HashMap<u64, CancellationToken>>,
    /// The local inference API, when the user turned it on in Settings.
    server: tokio::sync::Mutex<Option<Served>>,
}

/// A `benchtop serve` running inside the app, over the same engine and feedback log.
struct Served {
    url: String,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tauri::async_runtime::JoinHandle<()>,
}

/// What Settings shows about the local inference API.
#[derive(Serialize)]
struct ServerStatus {
    running: bool,
    url: Option<String>,
    token: Option<String>,
}

impl ServerStatus {
    fn of(served: Option<&Served>) -> ServerStatus {
        ServerStatus {
            running: served.is_some(),
            url: served.map(|s| s.url.clone()),
            token: served.map(|s| s.token.clone()),
        }
    }
}

/// One answer: the HTTP status the handler chose and its body (JSON, or text).
#[derive(Serialize)]
struct IpcResponse {
    status: u16,
    body: Value,
}

impl Desktop {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<axum::response::Response, String> {
        if !path.starts_with("/api/") && !path.starts_with("/v1/") {
            return Err(format!("`{path}` is not an API path"));
        }
        let router = match &self.core {
            Ok((_, router)) => router,
            // The API's own error shape; not `ApiError::unavailable`, whose retry-after says
            // "soon": this lasts until the app is started again.
            Err(reason) => {
                let error = ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable_error", reason);
                return Ok(error.into_response());
            }
        };
        let mut request = Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .map_err(|e| format!("not a valid request: {e}"))?;
        router.clone().oneshot(request).await.map_err(|e| match e {})
    }
}

async fn whole_body(response: axum::response::Response) -> Result<IpcResponse, String> {
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.map_err(|e| e.to_string())?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok(IpcResponse { status, body })
}

#[tauri::command]
async fn api(
    app: State<'_, Desktop>,
    method: String,
    path: String,
    body: Option<Value>,
) -> Result<IpcResponse, String> {
    whole_body(app.call(&method, &path, body).await?).await
}

/// A streamed answer's server-sent events, each as `{event, data}` on `events`, then `__end`.
#[tauri::command]
async fn api_stream(
    app: State<'_, Desktop>,
    id: u64,
    method: String,
    path: String,
    body: Option<Value>,
    events: Channel<Value>,
) -> Result<IpcResponse, String> {
    use eventsource_stream::Eventsource;
    let response = app.call(&method, &path, body).await?;
    let status = response.status().as_u16();
    if status >= 400 {
        return whole_body(response).await;
    }
    let cancel = CancellationToken::new();
    app.streams.lock().unwrap_or_else(|p| p.into_inner()).insert(id, cancel.clone());
    let mut stream = response.into_body().into_data_stream().eventsource();
    loop {
        tokio::select! {
            next = stream.next() => match next {
                Some(Ok(event)) => {
                    let data = serde_json::from_str(&event.data).unwrap_or(Value::String(event.data));
                    // A closed window is gone: stop (dropping the stream cancels the work).
                    if events.send(json!({ "event": event.event, "data": data })).is_err() {
                        break;
                    }
                }
                Some(Err(e)) => {
                    let _ = events.send(json!({ "event": "failed", "data": { "error": e.to_string() } }));
                    break;
                }
                None => break,
            },
            _ = cancel.cancelled() => break,
        }
    }
    // Dropping the stream drops the response: a playground run still going is cancelled.
    drop(stream);
    app.streams.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    let _ = events.send(json!({ "event": "__end", "data": null }));
    Ok(IpcResponse { status, body: Value::Null })
}

#[tauri::command]
fn api_cancel(app: State<'_, Desktop>, id: u64) {
    if let Some(cancel) = app.streams.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) {
        cancel.cancel();
    }
}

#[tauri::command]
async fn server_status(app: State<'_, Desktop>) -> Result<ServerStatus, String> {
    Ok(ServerStatus::of(app.server.lock().await.as_ref()))
}

/// Turn the local inference API on (127.0.0.1:`port`, default 8077, with the data dir's token)
/// or off (in-flight requests finish first).
#[tauri::command]
async fn server_set(app: State<'_, Desktop>, on: bool, port: Option<u16>) -> Result<ServerStatus, String> {
    let mut server = app.server.lock().await;
    if !on {
        if let Some(served) = server.take() {
            let _ = served.stop.send(());
            let _ = served.done.await;
        }
        return Ok(ServerStatus::of(None));
    }
    if server.is_none() {
        let (core, _) = app.core.as_ref().map_err(Clone::clone)?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port.unwrap_or(8077)));
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            format!("cannot listen on {addr} ({e}); is another Benchtop (or `benchtop serve`) using it?")
        })?;
        let token = benchtop_server::token::load_or_create(&core.data_dir).map_err(|e| e.to_string())?;
        let mut config = ServerConfig::local(addr, token.clone());
        config.batch = core.config.batch.clone();
        let state =
            AppState::new(Arc::clone(&core.engine), Arc::clone(&core.store), config).map_err(|e| e.to_string())?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tauri::async_runtime::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = benchtop_server::serve(listener, Arc::new(state), shutdown).await {
                tracing::error!("the local API stopped: {e}");
            }
        });
        *server = Some(Served { url: format!("http://{addr}"), token, stop, done });
    }
    Ok(ServerStatus::of(server.as_ref()))
}

/// The UI calls this once its first page has data: the cold-start figure.
#[tauri::command]
fn ui_ready() {
    static ONCE: OnceLock<()> = OnceLock::new();
    if ONCE.set(()).is_ok() {
        let ms = STARTED.get().map(|s| s.elapsed().as_secs_f64() * 1e3).unwrap_or(0.0);
        tracing::info!(ms, "interactive");
        if std::env::var_os("BENCHTOP_STARTUP_TRACE").is_some() {
            eprintln!("BENCHTOP_INTERACTIVE_MS={ms:.0}");
        }
    }
}

/// The core, as `benchtop serve` builds it: ONNX Runtime, the model folders, the feedback log.
fn open_core() -> anyhow::Result<Arc<AppState>> {
    let dirs = Dirs::resolve(None);
    let options = RuntimeOptions { spin: false, ..RuntimeOptions::default() };
    let library = std::env::var_os("BENCHTOP_ORT_LIB").map(std::path::PathBuf::from);
    let runtime = Runtime::locate_and_load(library.as_deref(), &dirs, &options)
        .context("ONNX Runtime could not be loaded (run `./dev start`, or set BENCHTOP_ORT_LIB)")?;
    let engine = Engine::new(runtime, Catalog::new(dirs.model_search_path(&[])), EngineOptions::default());
    let store = Store::open_in(&dirs.data)
        .with_context(|| format!("the feedback log in {} cannot be opened", dirs.data.display()))?;
    // Nothing listens: the address and token only matter to the HTTP guard, which IPC skips.
    let mut config = ServerConfig::local(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), String::new());
    // The local API, when turned on, serves from the playground's copy of each model (one session
    // on the shared thread pool) instead of loading one single-threaded replica per core: the
    // desktop is for trying things, and each replica of a MiniLM-sized model costs ~65 MiB.
    // `benchtop serve` keeps the replicas for throughput. (`server_set` copies these options.)
    config.batch.workers = 1;
    Ok(Arc::new(AppState::new(Arc::new(engine), Arc::new(store), config)?))
}

/// The native menu: the main actions, each also a key in the UI.
fn menu(app: &tauri::AppHandle) -> tauri::Result<Menu<tauri::Wry>> {
    let go = |id: &str, label: &str, key: &str| MenuItem::with_id(app, format!("nav:{id}"), label, true, Some(key));
    let file = Submenu::with_items(
        app,
        "File",
        true,
        &[
            &go("test-sets", "Import a test set…", "CmdOrCtrl+I")?,
            &go("export", "Export…", "CmdOrCtrl+E")?,
            &PredefinedMenuItem::separator(app)?,
            &PredefinedMenuItem::quit(app, None)?,
        ],
    )?;
    let edit = Submenu::with_items(
        app,
        "Edit",
        true,
        &[
            &PredefinedMenuItem::undo(app, None)?,
            &PredefinedMenuItem::redo(app, None)?,
            &PredefinedMenuItem::separator(app)?,
            &PredefinedMenuItem::cut(app, None)?,
            &PredefinedMenuItem::copy(app, None)?,
            &PredefinedMenuItem::paste(app, None)?,
            &PredefinedMenuItem::select_all(app, None)?,
        ],
    )?;
    let pages = Submenu::with_items(
        app,
        "Go",
        true,
        &[
            &go("playground", "Playground", "CmdOrCtrl+1")?,
            &go("test-sets", "Test sets", "CmdOrCtrl+2")?,
            &go("runs", "Runs", "CmdOrCtrl+3")?,
            &go("review", "Review", "CmdOrCtrl+4")?,
            &go("history", "History", "CmdOrCtrl+5")?,
            &go("export", "Export", "CmdOrCtrl+6")?,
            &go("settings", "Settings", "CmdOrCtrl+7")?,
        ],
    )?;
    Menu::with_items(app, &[&file, &edit, &pages])
}

fn main() -> anyhow::Result<()> {
    STARTED.get_or_init(Instant::now);
    let filter = tracing_subscriber::EnvFilter::try_from_env("BENCHTOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();

    let core = open_core()
        .map(|state| {
            let router = benchtop_server::in_process_router(Arc::clone(&state));
            (state, router)
        })
        .map_err(|e| {
            // The whole chain: "ONNX Runtime could not be loaded (…): <why>".
            let mut reason = format!("{e:#}");
            if !reason.ends_with('.') {
                reason.push('.');
            }
            reason.push_str(" Then start Benchtop again.");
            tracing::error!("{reason}");
            reason
        });
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .manage(Desktop { core, streams: Mutex::new(HashMap::new()), server: tokio::sync::Mutex::new(None) })
        .setup(|app| {
            let menu = menu(app.handle())?;
            app.set_menu(menu)?;
            app.on_menu_event(|app, event| {
                let Some(page) = event.id().as_ref().strip_prefix("nav:") else { return };
                if let Some(window) = app.get_webview_window("main") {
                    let detail = serde_json::to_string(page).unwrap_or_default();
                    let _ = window.eval(format!(
                        "window.dispatchEvent(new CustomEvent('benchtop:navigate', {{ detail: {detail} }}))"
                    ));
                }
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![api, api_stream, api_cancel, ui_ready, server_status, server_set])
        .build(tauri::generate_context!())
        .context("the desktop window could not be created (is there a display?)")?;
    app.run(|handle, event| {
        if let tauri::RunEvent::Exit = event {
            // Cancel running jobs (runs stay resumable) and flush the feedback log.
            if let Ok((state, _)) = &handle.state::<Desktop>().core {
                tauri::async_runtime::block_on(Arc::clone(state).shutdown());
            }
        }
    });
    Ok(())
}
