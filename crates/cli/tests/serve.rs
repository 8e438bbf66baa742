//! `benchtop serve` as a user runs it: the real binary on 127.0.0.1, the official OpenAI client
//! pointed at it, signals, and a load test of 100,000 requests.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn benchtop(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_benchtop"));
    cmd.env_remove("BENCHTOP_ORT_LIB").env_remove("BENCHTOP_MODELS_DIR").env("BENCHTOP_DATA_DIR", data);
    cmd
}

/// A running `benchtop serve`, stopped with SIGTERM when dropped.
struct Served {
    child: Child,
    url: String,
    token: String,
    stderr: PathBuf,
}

impl Served {
    fn start(data: &Path, extra: &[&str]) -> Served {
        let stderr = data.join("serve.stderr");
        let fixtures = repo().join("models/fixtures");
        let mut child = benchtop(data)
            .args(["serve", "--listen", "127.0.0.1:0", "--models-dir", fixtures.to_str().expect("utf8")])
            .args(extra)
            .env("BENCHTOP_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("reads");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in `{line}`: {}", std::fs::read_to_string(&stderr).unwrap_or_default()))
            .to_string();
        let out = benchtop(data).arg("token").output().expect("token runs");
        assert!(out.status.success());
        let token = String::from_utf8(out.stdout).expect("utf8").trim().to_string();
        Served { child, url, token, stderr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status (graceful shutdown).
    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS")
}

fn python() -> PathBuf {
    let py = benchtop_core::dirs::Dirs::resolve(None).cache.join("venv/bin/python");
    assert!(py.is_file(), "{} is missing; run `./dev test`, which prepares it", py.display());
    py
}

#[test]
fn the_official_openai_client_just_works() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut served = Served::start(data.path(), &["-v"]);
    let out = Command::new(python())
        .arg(repo().join("tests/openai_client.py"))
        .args([&served.url, &served.token, "tiny-qwen2", "minilm-l6-v2"])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the OpenAI client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        served.stderr()
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(got["models"].as_array().expect("models").contains(&json!("tiny-qwen2")));
    assert_eq!((got["embedding_count"].as_u64(), got["embedding"].as_array().map(Vec::len)), (Some(2), Some(384)));
    assert_eq!(got["embedding"], got["embedding_float"], "the client's base64 decoding gives the float answer");
    assert!(!got["chat"].as_str().expect("chat").is_empty());
    assert_eq!(got["chat"], got["stream"], "streamed and whole answers are the same greedy text");
    assert!(got["stream_pieces"].as_u64().expect("pieces") > 1);
    assert_eq!(got["chat_usage"]["completion_tokens"], 10);
    assert_eq!(got["stream_usage"]["completion_tokens"], 10);
    assert_eq!(got["chat_finish"], "length");
    let errors = &got["errors"];
    assert!(errors["not_found"].as_str().expect("404 mapped").contains("no model named `no-such-model`"), "{errors}");
    assert!(errors["bad_request"].as_str().expect("400 mapped").contains("messages"), "{errors}");
    assert!(errors["auth"].as_str().expect("401 mapped").contains("token"), "{errors}");

    // The calls are in the log; feedback by the id the client saw.
    let chat_id = got["chat_id"].as_str().expect("id");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/v1/feedback", served.url))
            .bearer_auth(&served.token)
            .json(&json!({"id": chat_id, "kind": "thumb", "up": false}))
            .send()
            .await
            .expect("sends")
            .status()
    });
    assert_eq!(status.as_u16(), 201);
    assert!(served.stop().success(), "{}", served.stderr());
    // Structured logs: one JSON object per line, one per request, never the token.
    let logs = served.stderr();
    let lines: Vec<Value> =
        logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l["fields"]["message"] == "request").collect();
    assert!(
        requests.iter().any(|r| r["fields"]["route"] == "/v1/embeddings" && r["fields"]["status"] == 200),
        "{logs}"
    );
    assert!(requests.iter().any(|r| r["fields"]["status"] == 401), "the wrong-key call is logged: {logs}");
    assert!(!logs.contains(&served.token), "the token never reaches the logs");
    let history = benchtop(data.path()).args(["history", "hello there"]).output().expect("history");
    assert!(
        String::from_utf8_lossy(&history.stdout).contains("tiny-qwen2"),
        "{}",
        String::from_utf8_lossy(&history.stderr)
    );
}

#[test]
fn token_is_made_once_kept_private_and_can_be_replaced() {
    let data = tempfile::tempdir().expect("tempdir");
    let token = |args: &[&str]| {
        let out = benchtop(data.path()).arg("token").args(args).output().expect("runs");
        assert!(out.status.success());
        String::from_utf8(out.stdout).expect("utf8").trim().to_string()
    };
    let first = token(&[]);
    assert!(first.starts_with("bt_") && first.len() == 67, "{first}");
    assert_eq!(token(&[]), first, "kept");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.path().join("api-token")).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "readable by the owner only");
    let second = token(&["--new"]);
    assert_ne!(second, first);
    assert_eq!(token(&[]), second);
}

/// Start `command`, read the first line it prints, send it SIGTERM: (that line, how it ended).
fn first_line_then_stop(command: &mut Command) -> (String, std::process::Output) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("reads");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    (line, child.wait_with_output().expect("exits"))
}

#[test]
fn listening_beyond_loopback_warns_loudly() {
    let data = tempfile::tempdir().expect("tempdir");
    let fixtures = repo().join("models/fixtures");
    let (line, out) = first_line_then_stop(benchtop(data.path()).args([
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--models-dir",
        fixtures.to_str().expect("utf8"),
    ]));
    assert!(line.contains("http://0.0.0.0:"), "{line}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "a SIGTERM right after the listening line stops it cleanly: {:?}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("WARNING") && stderr.contains("NOT LOOPBACK"), "{stderr}");
}

#[test]
fn app_without_a_display_serves_the_browser_ui_and_says_so() {
    let data = tempfile::tempdir().expect("tempdir");
    let ui = tempfile::tempdir().expect("ui");
    std::fs::write(ui.path().join("index.html"), "<!doctype html><title>Benchtop</title>").expect("index");
    let (line, out) = first_line_then_stop(
        benchtop(data.path())
            .args(["app"])
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env("BENCHTOP_UI_DIR", ui.path())
            // `--open` finds no browser here; the URL is printed either way.
            .env("BROWSER", "true"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    if line.is_empty() && stderr.contains("8077") {
        // Another Benchtop holds the default port on this machine: the message must say so.
        assert!(stderr.contains("in use") || stderr.contains("Address"), "{stderr}");
        return;
    }
    assert!(line.contains("http://127.0.0.1:8077"), "{line}\n{stderr}");
    assert!(stderr.contains("No display"), "{stderr}");
    assert!(stderr.contains("Workbench UI: http://127.0.0.1:8077/"), "{stderr}");
    assert!(!stderr.contains("token="), "the token is not printed: {stderr}");
}

/// 100,000 requests at concurrency 64, half classification and half embeddings: no errors but
/// deliberate 429s, bounded memory, and every answered call in the log.
#[test]
fn load_test_100k_requests_at_concurrency_64() {
    const TOTAL: usize = 100_000;
    const CONCURRENCY: usize = 64;
    let data = tempfile::tempdir().expect("tempdir");
    let mut served = Served::start(data.path(), &["--preload", "tiny-multilabel", "--preload", "tiny-cls-embed"]);
    let pid = served.pid();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(Mutex::new(Vec::with_capacity(TOTAL)));
    let rss_at_10 = Arc::new(Mutex::new(None::<u64>));
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let (too_many, errors): (usize, Vec<String>) = rt.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().expect("client");
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENCY {
            let (http, url, token) = (http.clone(), served.url.clone(), served.token.clone());
            let (next, done, ids, rss_at_10) = (next.clone(), done.clone(), ids.clone(), rss_at_10.clone());
            tasks.push(tokio::spawn(async move {
                let (mut too_many, mut errors, mut mine) = (0usize, Vec::new(), Vec::new());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= TOTAL || started.elapsed() > Duration::from_secs(900) {
                        break;
                    }
                    let (path, body) = if i % 2 == 0 {
                        (
                            "/v1/predict",
                            json!({"model": "tiny-multilabel", "input": format!("request {i}: my order is late")}),
                        )
                    } else {
                        ("/v1/embeddings", json!({"model": "tiny-cls-embed", "input": format!("request {i}: hello")}))
                    };
                    match http.post(format!("{url}{path}")).bearer_auth(&token).json(&body).send().await {
                        Ok(r) if r.status() == 200 => {
                            let id =
                                r.headers().get("x-benchtop-call-id").and_then(|v| v.to_str().ok()).map(str::to_string);
                            match id {
                                Some(id) => mine.push(id),
                                None => errors.push("a 200 without a call id".to_string()),
                            }
                            let _ = r.bytes().await;
                        }
                        Ok(r) if r.status() == 429 => too_many += 1,
                        Ok(r) => errors.push(format!("{}: {}", r.status(), r.text().await.unwrap_or_default())),
                        Err(e) => errors.push(e.to_string()),
                    }
                    if done.fetch_add(1, Ordering::Relaxed) + 1 == TOTAL / 10 {
                        *rss_at_10.lock().expect("lock") = Some(rss_kib(pid));
                    }
                }
                ids.lock().expect("lock").extend(mine);
                (too_many, errors)
            }));
        }
        let mut too_many = 0;
        let mut errors = Vec::new();
        for task in tasks {
            let (t, e) = task.await.expect("task");
            too_many += t;
            errors.extend(e);
        }
        (too_many, errors)
    });
    let elapsed = started.elapsed();
    let rss_end = rss_kib(pid);
    let rss_start = rss_at_10.lock().expect("lock").expect("rss at 10 %");
    assert!(errors.is_empty(), "{} errors, first: {:?}", errors.len(), &errors[..errors.len().min(5)]);
    assert_eq!(done.load(Ordering::Relaxed), TOTAL, "all requests sent within the time bound ({elapsed:?})");
    let ids = std::mem::take(&mut *ids.lock().expect("lock"));
    assert_eq!(ids.len() + too_many, TOTAL);
    assert!(too_many < TOTAL / 100, "{too_many} requests refused with 429 at concurrency {CONCURRENCY}");
    let growth = rss_end as f64 / rss_start as f64;
    eprintln!(
        "load test: {TOTAL} requests in {:.1} s ({:.0}/s), {too_many} × 429, RSS {rss_start} → {rss_end} KiB ({:+.1} %)",
        elapsed.as_secs_f64(),
        TOTAL as f64 / elapsed.as_secs_f64(),
        (growth - 1.0) * 100.0
    );
    assert!(growth <= 1.10, "RSS grew {:.1} % from the first 10 % of requests to the end", (growth - 1.0) * 100.0);

    assert!(served.stop().success(), "graceful stop: {}", served.stderr());
    let db = rusqlite::Connection::open(data.path().join("benchtop.db")).expect("db");
    let mut stmt = db.prepare("SELECT call_id FROM results WHERE call_id IS NOT NULL").expect("query");
    let logged: HashSet<String> = stmt.query_map([], |r| r.get(0)).expect("rows").map(|r| r.expect("row")).collect();
    let answered: HashSet<String> = ids.into_iter().collect();
    assert_eq!(answered.len(), TOTAL - too_many, "call ids are unique");
    assert_eq!(logged.len(), answered.len(), "every answered call is in the log, once");
    assert!(logged == answered, "the logged calls are exactly the answered ones");
}
