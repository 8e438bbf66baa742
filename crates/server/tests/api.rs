//! The real server on 127.0.0.1, real models (the default ones and the committed fixtures), a real
//! feedback log in a temporary folder, spoken to over HTTP.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use benchtop_core::dirs::Dirs;
use benchtop_core::engine::{
    Catalog, Engine, EngineOptions, GenerateParams, Message, Prompt, Role, Runtime, RuntimeOptions,
};
use benchtop_core::runs::checks::Rules;
use benchtop_core::store::Store;
use benchtop_server::{AppState, ServerConfig};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[path = "../../core/tests/common/hub.rs"]
mod hub;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn engine() -> Engine {
    let dirs = Dirs::resolve(None);
    let runtime = Runtime::locate_and_load(None, &dirs, &RuntimeOptions::default())
        .unwrap_or_else(|e| panic!("these tests need ONNX Runtime and the default models; run `./dev test`.\n{e}"));
    Engine::new(
        runtime,
        Catalog::new(vec![dirs.default_models(), repo().join("models/fixtures")]),
        EngineOptions::default(),
    )
}

struct TestServer {
    url: String,
    token: String,
    state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _data: tempfile::TempDir,
}

impl TestServer {
    fn start(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let data = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open_in(data.path()).expect("store"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let token = benchtop_server::token::load_or_create(data.path()).expect("token");
        let mut config = ServerConfig::local(addr, token.clone());
        tweak(&mut config);
        let state = Arc::new(AppState::new(Arc::new(engine()), store, config).expect("state"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                benchtop_server::serve(listener, served, async move {
                    let _ = stopped.await;
                })
                .await
                .expect("serves");
            });
        });
        TestServer { url: format!("http://{addr}"), token, state, stop: Some(stop), thread: Some(thread), _data: data }
    }

    /// Graceful shutdown: returns once in-flight requests finished and the log is flushed.
    fn shutdown(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
    }

    fn client(&self) -> Client {
        Client { http: reqwest::Client::new(), url: self.url.clone(), token: self.token.clone() }
    }

    fn store(&self) -> &Store {
        &self.state.store
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    async fn post(&self, path: &str, body: Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("sends");
        let (status, headers) = (r.status(), r.headers().clone());
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await.expect("sends");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt")
}

fn error_type(body: &Value) -> &str {
    body["error"]["type"].as_str().unwrap_or_else(|| panic!("not an error body: {body}"))
}

#[test]
fn predict_answers_what_the_engine_answers_and_logs_each_input_under_the_call_id() {
    let server = TestServer::start(|_| {});
    let c = server.client();
    let texts =
        ["I was charged twice for my subscription", "The app crashes on start", "Do you offer volume discounts?"];
    let (status, headers, body) =
        rt().block_on(c.post("/v1/predict", json!({"model": "support-triage", "input": texts, "top_k": 2})));
    assert_eq!(status, StatusCode::OK, "{body}");
    let call_id = body["id"].as_str().expect("id");
    assert!(call_id.starts_with("call_"));
    assert_eq!(headers["x-benchtop-call-id"].to_str().expect("ascii"), call_id);

    let expected = server.state.engine.model("support-triage").expect("model").classify(&texts).expect("classify");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 3);
    for (row, want) in data.iter().zip(&expected) {
        assert_eq!(row["label"], want.top().label.as_str());
        assert!((row["score"].as_f64().expect("score") - f64::from(want.top().score)).abs() < 1e-6);
        assert_eq!(row["scores"].as_array().expect("scores").len(), 2, "top_k = 2");
    }

    server.store().flush().expect("flush");
    let ids = server.store().call_results(call_id).expect("results");
    assert_eq!(ids.len(), 3, "one logged result per input");
    let logged = server.store().run_results(server.state.traffic_run).expect("traffic");
    for (i, text) in texts.iter().enumerate() {
        let r = logged.iter().find(|r| r.id == ids[i]).expect("logged");
        assert_eq!(r.input, *text);
        assert_eq!(r.answer.label.as_deref(), Some(expected[i].top().label.as_str()));
        assert_eq!(r.meta["index"], i);
        assert_eq!(r.meta["endpoint"], "/v1/predict");
        assert!(r.meta["client"]["addr"].as_str().expect("addr").starts_with("127.0.0.1:"));
        assert!(r.answer.latency_ms.expect("latency") > 0.0);
    }
}

#[test]
fn embeddings_follow_the_openai_format_in_floats_and_base64() {
    let server = TestServer::start(|_| {});
    let c = server.client();
    let rt = rt();
    let (status, _, floats) = rt.block_on(c.post(
        "/v1/embeddings",
        json!({"model": "minilm-l6-v2", "input": ["hello world", "a second text"], "user": "ignored"}),
    ));
    assert_eq!(status, StatusCode::OK, "{floats}");
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["data"][1]["index"], 1);
    assert!(floats["usage"]["prompt_tokens"].as_u64().expect("tokens") > 0);
    let want = server.state.engine.model("minilm-l6-v2").expect("model").embed(&["hello world"]).expect("embed");
    let got: Vec<f32> = floats["data"][0]["embedding"]
        .as_array()
        .expect("floats")
        .iter()
        .map(|v| v.as_f64().expect("f") as f32)
        .collect();
    assert_eq!(got.len(), 384);
    assert!(got.iter().zip(&want[0].vector).all(|(a, b)| (a - b).abs() < 1e-6));

    let (status, _, b64) = rt.block_on(
        c.post("/v1/embeddings", json!({"model": "minilm-l6-v2", "input": "hello world", "encoding_format": "base64"})),
    );
    assert_eq!(status, StatusCode::OK);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().expect("b64"))
        .expect("decodes");
    let decoded: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    // The same text alone (as `want` was made): the very same float32s, little-endian.
    assert_eq!(decoded, want[0].vector, "base64 holds the same little-endian float32s");

    let (status, _, body) =
        rt.block_on(c.post("/v1/embeddings", json!({"model": "minilm-l6-v2", "input": "x", "dimensions": 128})));
    assert_eq!((status, error_type(&body)), (StatusCode::BAD_REQUEST, "invalid_request_error"));
    assert!(body["error"]["message"].as_str().expect("msg").contains("384"), "{body}");
}

#[test]
fn bad_requests_get_the_right_status_and_a_json_error_and_run_no_model() {
    let server = TestServer::start(|c| {
        c.limits.max_inputs = 4;
        c.limits.max_input_chars = 100;
        c.limits.max_body_bytes = 4096;
        let rules = Rules { forbidden: vec!["(?i)password".into()], ..Rules::default() };
        c.rules.insert("support-triage".into(), rules);
    });
    let c = server.client();
    let rt = rt();
    let cases: Vec<(&str, Value, StatusCode, &str, &str)> = vec![
        ("/v1/predict", json!({"model": "nope", "input": "x"}), StatusCode::NOT_FOUND, "not_found_error", "available:"),
        (
            "/v1/predict",
            json!({"model": "minilm-l6-v2", "input": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "embedding model",
        ),
        (
            "/v1/embeddings",
            json!({"model": "support-triage", "input": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "classification model",
        ),
        ("/v1/predict", json!({"input": "x"}), StatusCode::BAD_REQUEST, "invalid_request_error", "`model` is missing"),
        (
            "/v1/predict",
            json!({"model": "support-triage"}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "`input` is missing",
        ),
        (
            "/v1/predict",
            json!({"model": "support-triage", "input": []}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "empty array",
        ),
        (
            "/v1/predict",
            json!({"model": "support-triage", "input": "  "}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "empty",
        ),
        (
            "/v1/predict",
            json!({"model": "support-triage", "input": [1, 2]}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "token ids",
        ),
        (
            "/v1/predict",
            json!({"model": "support-triage", "input": "x", "topk": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "unknown field `topk`",
        ),
        (
            "/v1/predict",
            json!({"model": "support-triage", "input": ["a", "b", "c", "d", "e"]}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "at most 4",
        ),
        (
            "/v1/predict",
            json!({"model": "support-triage", "input": "y".repeat(101)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "101 characters",
        ),
        (
            "/v1/predict",
            json!({"model": "support-triage", "input": "my PASSWORD is hunter2"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_violation",
            "rules set for `support-triage`",
        ),
        (
            "/v1/embeddings",
            json!({"model": "minilm-l6-v2", "input": "x", "encoding_format": "hex"}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "encoding_format",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny-qwen2", "messages": [{"role": "user", "content": "hi"}], "n": 2}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "`n`",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny-qwen2", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "tool calling",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny-qwen2", "messages": []}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "empty",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny-qwen2", "messages": [{"role": "tool", "content": "x"}]}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "role",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny-qwen2", "messages": [{"role": "user", "content": "hi"}], "temperature": -1}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "temperature",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "minilm-l6-v2", "messages": [{"role": "user", "content": "hi"}]}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "generation model",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny-qwen2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "at most",
        ),
        (
            "/v1/feedback",
            json!({"id": "call_000000000000", "kind": "thumb", "up": true}),
            StatusCode::NOT_FOUND,
            "not_found_error",
            "no logged call",
        ),
        (
            "/v1/feedback",
            json!({"kind": "thumb", "up": true}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "`id` is missing",
        ),
    ];
    for (path, body, status, kind, needle) in cases {
        let (got, _, answer) = rt.block_on(c.post(path, body.clone()));
        assert_eq!(got, status, "{path} {body} → {answer}");
        assert_eq!(error_type(&answer), kind, "{path} {body}");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(needle), "{path} {body}: `{message}` lacks `{needle}`");
    }

    // Malformed JSON, a wrong content type, an oversized body, an unknown route and method.
    let http = reqwest::Client::new();
    let raw = |path: &str, ctype: &str, body: Vec<u8>| {
        let req = http
            .post(format!("{}{path}", server.url))
            .bearer_auth(&server.token)
            .header("content-type", ctype)
            .body(body);
        rt.block_on(async { req.send().await.expect("sends") })
    };
    let r = raw("/v1/predict", "application/json", b"{\"model\": \"support-triage\", \"input\": ".to_vec());
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(rt.block_on(r.text()).expect("text").contains("not valid JSON"));
    let r = raw("/v1/predict", "text/plain", b"{}".to_vec());
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!("{{\"model\": \"support-triage\", \"input\": \"{}\"}}", "z".repeat(10_000));
    let r = raw("/v1/predict", "application/json", big.into_bytes());
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = rt.block_on(r.json()).expect("json error");
    assert_eq!(error_type(&body), "request_too_large");
    let (status, body) = rt.block_on(c.get("/v1/nothing"));
    assert_eq!((status, error_type(&body)), (StatusCode::NOT_FOUND, "not_found_error"));
    let (status, body) = rt.block_on(c.get("/v1/predict"));
    assert_eq!((status, error_type(&body)), (StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error"));

    server.store().flush().expect("flush");
    let logged = server.store().run_results(server.state.traffic_run).expect("traffic");
    assert!(logged.is_empty(), "refused requests are not logged and ran no model: {logged:?}");
}

#[test]
fn token_host_and_origin_are_checked_before_anything_else() {
    let server = TestServer::start(|c| c.allowed_origins.push("http://localhost:5173".into()));
    let http = reqwest::Client::new();
    let rt = rt();
    let port = server.url.rsplit(':').next().expect("port").to_string();
    let send = |path: &str, token: Option<&str>, headers: &[(&str, String)]| {
        let mut req = http.get(format!("{}{path}", server.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        rt.block_on(async {
            let r = req.send().await.expect("sends");
            let status = r.status();
            let www = r.headers().get("www-authenticate").map(|v| v.to_str().expect("ascii").to_string());
            let cors = r.headers().keys().any(|k| k.as_str().starts_with("access-control-"));
            (status, www, cors, r.text().await.expect("body"))
        })
    };
    let (status, www, _, body) = send("/v1/models", None, &[]);
    assert_eq!((status, www.as_deref()), (StatusCode::UNAUTHORIZED, Some("Bearer")));
    assert!(body.contains("benchtop token"), "{body}");
    let (status, _, _, body) = send("/v1/models", Some("bt_wrong"), &[]);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains(&server.token), "the right token never appears in an error");
    assert_eq!(send("/v1/models", Some(&server.token), &[]).0, StatusCode::OK);
    assert_eq!(send("/healthz", None, &[]).0, StatusCode::OK, "health needs no token");
    assert_eq!(send("/openapi.json", None, &[]).0, StatusCode::OK);

    // DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example.
    let (status, _, _, body) = send("/v1/models", Some(&server.token), &[("host", format!("evil.example:{port}"))]);
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(send("/healthz", None, &[("host", format!("evil.example:{port}"))]).0, StatusCode::FORBIDDEN);
    assert_eq!(send("/v1/models", Some(&server.token), &[("host", format!("localhost:{port}"))]).0, StatusCode::OK);
    // Cross-site: a page elsewhere posting to the API; the allow-listed dev origin passes.
    let (status, _, cors, _) = send("/v1/models", Some(&server.token), &[("origin", "https://evil.example".into())]);
    assert_eq!((status, cors), (StatusCode::FORBIDDEN, false));
    assert_eq!(send("/v1/models", Some(&server.token), &[("origin", "null".into())]).0, StatusCode::FORBIDDEN);
    let (status, _, cors, _) = send("/v1/models", Some(&server.token), &[("origin", "http://localhost:5173".into())]);
    assert_eq!((status, cors), (StatusCode::OK, false), "CORS stays closed: no Access-Control headers");
    let (status, _, _, _) = send("/v1/models", Some(&server.token), &[("origin", format!("http://127.0.0.1:{port}"))]);
    assert_eq!(status, StatusCode::OK, "the server's own origin (its UI) passes");
}

fn chat(content: &str, extra: Value) -> Value {
    let mut body = json!({"model": "tiny-qwen2", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": content}], "max_tokens": 12, "temperature": 0});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

fn reference(server: &TestServer, content: &str, max: usize) -> String {
    let generator = server.state.engine.generator("tiny-qwen2").expect("generator");
    let prompt = Prompt::Chat(vec![Message::new(Role::System, "be brief"), Message::new(Role::User, content)]);
    let params = GenerateParams { max_new_tokens: Some(max), temperature: Some(0.0), ..GenerateParams::default() };
    generator.generate(&prompt, &params, &AtomicBool::new(false), &mut |_| {}).expect("generates").text
}

#[test]
fn chat_completions_whole_and_streamed_give_the_engines_text_with_usage() {
    let server = TestServer::start(|_| {});
    let c = server.client();
    let rt = rt();
    let want = reference(&server, "hello there", 12);
    let (status, headers, body) = rt.block_on(c.post("/v1/chat/completions", chat("hello there", json!({}))));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], want.as_str());
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 12);
    let call_id = body["id"].as_str().expect("id").to_string();
    assert_eq!(headers["x-benchtop-call-id"], call_id.as_str());

    // Streamed: chunks in order, role first, finish reason, usage, [DONE].
    let events: Vec<String> = rt.block_on(async {
        let r = c
            .http
            .post(format!("{}/v1/chat/completions", c.url))
            .bearer_auth(&c.token)
            .json(&chat("hello there", json!({"stream": true, "stream_options": {"include_usage": true}})))
            .send()
            .await
            .expect("sends");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"].to_str().expect("ascii").starts_with("text/event-stream"));
        use eventsource_stream::Eventsource;
        r.bytes_stream().eventsource().map(|e| e.expect("event").data).collect().await
    });
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).expect("chunk json")).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, want, "streamed pieces add up to the same text");
    assert!(chunks.len() > 3, "streamed in pieces, not at once");
    let finish: Vec<&Value> =
        chunks.iter().filter_map(|c| c["choices"][0].get("finish_reason")).filter(|f| !f.is_null()).collect();
    assert_eq!(finish, vec![&json!("length")]);
    let usage = chunks.last().expect("usage chunk");
    assert_eq!(
        (usage["choices"].as_array().map(Vec::len), usage["usage"]["completion_tokens"].as_u64()),
        (Some(0), Some(12))
    );

    // A stop sequence ends it early; the call is logged with its parameters and feedback lands.
    let (status, _, stopped) = rt.block_on(c.post(
        "/v1/chat/completions",
        chat("hello there", json!({"stop": [want.chars().nth(3).expect("4 chars").to_string()]})),
    ));
    assert_eq!(status, StatusCode::OK);
    assert!(stopped["choices"][0]["message"]["content"].as_str().expect("text").len() < want.len());
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop");

    let (status, _, fb) = rt.block_on(
        c.post("/v1/feedback", json!({"id": call_id, "kind": "correction", "text": "Hi!", "annotator": "qa"})),
    );
    assert_eq!(status, StatusCode::CREATED, "{fb}");
    let result_id = fb["result_id"].as_i64().expect("result id");
    let logged = server.store().run_results(server.state.traffic_run).expect("traffic");
    let r = logged.iter().find(|r| r.id == result_id).expect("logged");
    assert_eq!(r.answer.output.as_deref(), Some(want.as_str()));
    assert_eq!(r.input, "hello there");
    assert_eq!((r.answer.tokens_out, r.meta["params"]["max_tokens"].as_u64()), (Some(12), Some(12)));
    assert_eq!(r.meta["messages"][0]["role"], "system");
    let (status, current) = rt.block_on(c.get(&format!("/api/results/{result_id}/feedback")));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(current["current"][0]["kind"], "correction");
    assert_eq!(current["current"][0]["annotator"], "qa");
}

#[test]
fn feedback_names_one_input_of_a_multi_input_call_and_supports_undo_and_preferences() {
    let server = TestServer::start(|_| {});
    let c = server.client();
    let rt = rt();
    let (_, _, a) =
        rt.block_on(c.post("/v1/predict", json!({"model": "support-triage", "input": ["refund me", "app crashes"]})));
    let (_, _, b) = rt.block_on(c.post("/v1/predict", json!({"model": "support-triage", "input": "refund me now"})));
    let (a_id, b_id) = (a["id"].as_str().expect("a"), b["id"].as_str().expect("b"));
    let (status, _, body) = rt.block_on(c.post("/v1/feedback", json!({"id": a_id, "kind": "thumb", "up": true})));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().expect("msg").contains("2 inputs"), "{body}");
    let (status, _, body) = rt
        .block_on(c.post("/v1/feedback", json!({"id": a_id, "index": 1, "kind": "correction", "label": "technical"})));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second = server.store().call_results(a_id).expect("results")[1];
    assert_eq!(body["result_id"], second);
    let (status, _, undo) =
        rt.block_on(c.post("/v1/feedback", json!({"id": a_id, "index": 1, "kind": "undo", "feedback_id": body["id"]})));
    assert_eq!(status, StatusCode::CREATED, "{undo}");
    assert!(server.store().current_feedback(second).expect("current").is_empty(), "undone");
    let (status, _, pref) =
        rt.block_on(c.post("/v1/feedback", json!({"id": b_id, "kind": "preference", "other": a_id, "choice": "a"})));
    assert_eq!(status, StatusCode::BAD_REQUEST, "B is a two-input call: {pref}");
    let (status, _, pref) = rt.block_on(c.post("/v1/feedback", json!({"id": b_id, "kind": "rating", "stars": 6})));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{pref}");
    let (status, _, bad) =
        rt.block_on(c.post("/v1/feedback", json!({"id": b_id, "kind": "thumb", "up": true, "stars": 2})));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad["error"]["message"].as_str().expect("msg").contains("unknown field `stars`"), "{bad}");
}

/// Wait until `/metrics` shows `texts` texts queued for `model` (a request the batcher holds),
/// looking every 10 ms, `tries` times at most.
async fn wait_queued(c: &Client, model: &str, texts: usize, tries: usize) {
    let needle = format!("benchtop_queue_depth_texts{{model=\"{model}\"}} {texts}");
    for _ in 0..tries {
        let r = c.http.get(format!("{}/metrics", c.url)).bearer_auth(&c.token).send().await.expect("metrics");
        if r.text().await.expect("text").contains(&needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{texts} texts of `{model}` never showed in the queue");
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    // One batch worker that waits long for company, and room for two texts.
    let server = TestServer::start(|c| {
        c.batch.max_batch = 64;
        c.batch.max_wait = Duration::from_secs(3);
        c.batch.queue_texts = 2;
    });
    let c = server.client();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(async {
        // Load the model first so the queue is what is measured.
        let warm = c.clone();
        let (s, _, _) = warm.post("/v1/predict", json!({"model": "tiny-multilabel", "input": "warm"})).await;
        assert_eq!(s, StatusCode::OK);
        let first = tokio::spawn({
            let c = c.clone();
            async move { c.post("/v1/predict", json!({"model": "tiny-multilabel", "input": ["one", "two"]})).await }
        });
        // Wait until the two texts are queued (the worker holds them for up to 3 s).
        wait_queued(&c, "tiny-multilabel", 2, 200).await;
        let r = c
            .http
            .post(format!("{}/v1/predict", c.url))
            .bearer_auth(&c.token)
            .json(&json!({"model": "tiny-multilabel", "input": "three"}))
            .send()
            .await
            .expect("sends");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "1");
        let body: Value = r.json().await.expect("json");
        assert_eq!(error_type(&body), "overloaded_error");
        let (status, _, body) = first.await.expect("first");
        assert_eq!(status, StatusCode::OK, "the queued request still gets its answer: {body}");
    });
}

#[test]
fn metrics_health_openapi_and_the_ui_api_answer() {
    let server = TestServer::start(|_| {});
    let c = server.client();
    let rt = rt();
    let (_, _, p) =
        rt.block_on(c.post("/v1/predict", json!({"model": "support-triage", "input": "where is my invoice"})));
    assert!(p["id"].is_string());
    let (status, health) = rt.block_on(c.get("/healthz"));
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("ok")));
    let metrics = rt.block_on(async {
        c.http
            .get(format!("{}/metrics", c.url))
            .bearer_auth(&c.token)
            .send()
            .await
            .expect("sends")
            .text()
            .await
            .expect("text")
    });
    for needle in [
        "benchtop_http_requests_total{route=\"/v1/predict\",method=\"POST\",status=\"200\"} 1",
        "benchtop_http_request_duration_seconds_count{route=\"/v1/predict\"} 1",
        "benchtop_batch_size_texts_count{model=\"support-triage\"} 1",
        "benchtop_batch_duration_seconds_count{model=\"support-triage\"} 1",
        "benchtop_queue_depth_texts{model=\"support-triage\"} 0",
    ] {
        assert!(metrics.contains(needle), "metrics lack `{needle}`:\n{metrics}");
    }

    // Every route is documented, and every documented path is a route.
    let (_, spec) = rt.block_on(c.get("/openapi.json"));
    let paths = spec["paths"].as_object().expect("paths");
    let routes: HashSet<(String, String)> =
        benchtop_server::ROUTES.iter().map(|(m, p)| (m.to_lowercase(), p.to_string())).collect();
    let documented: HashSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, ops)| ops.as_object().expect("ops").keys().map(move |m| (m.clone(), path.clone())))
        .collect();
    assert_eq!(routes, documented);
    for (method, path) in &routes {
        let path = path.replace("{id}", "1").replace("{name}", "nobody");
        let r = rt.block_on(async {
            let url = format!("{}{path}", c.url);
            let req = match method.as_str() {
                "get" => c.http.get(url),
                "delete" => c.http.delete(url),
                "put" => c.http.put(url).json(&json!({})),
                _ => c.http.post(url).json(&json!({})),
            };
            req.bearer_auth(&c.token).send().await.expect("sends")
        });
        let body: Value = rt.block_on(r.json()).unwrap_or(Value::Null);
        assert!(
            body["error"]["type"] != "not_found_error"
                || body["error"]["message"].as_str().is_some_and(|m| !m.starts_with("no route")),
            "{method} {path} is not routed: {body}"
        );
    }

    server.store().flush().expect("flush");
    let (status, runs) = rt.block_on(c.get("/api/runs"));
    assert_eq!(status, StatusCode::OK);
    let traffic = runs["runs"].as_array().expect("runs").iter().find(|r| r["kind"] == "traffic").expect("traffic run");
    assert_eq!(traffic["results"], 1);
    let (status, hits) = rt.block_on(c.get("/api/history?q=invoice"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hits["hits"][0]["input"], "where is my invoice");
    let (status, body) = rt.block_on(c.get("/api/history"));
    assert_eq!((status, error_type(&body)), (StatusCode::BAD_REQUEST, "invalid_request_error"));
    let (status, body) = rt.block_on(c.get("/api/runs/999"));
    assert_eq!((status, error_type(&body)), (StatusCode::NOT_FOUND, "not_found_error"));
    let (status, models) = rt.block_on(c.get("/api/models"));
    assert_eq!(status, StatusCode::OK);
    let names: HashMap<String, bool> = models["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| (m["name"].as_str().expect("name").to_string(), m["ok"].as_bool().expect("ok")))
        .collect();
    assert_eq!(names.get("support-triage"), Some(&true));
}

#[test]
fn shutdown_lets_a_running_stream_finish_and_flushes_the_log() {
    let mut server = TestServer::start(|_| {});
    let c = server.client();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let (tx, rx) = std::sync::mpsc::channel();
    let events = rt.spawn(async move {
        let r = c
            .http
            .post(format!("{}/v1/chat/completions", c.url))
            .bearer_auth(&c.token)
            .json(&chat("tell me a long story", json!({"stream": true, "max_tokens": 200})))
            .send()
            .await
            .expect("sends");
        let mut stream = r.bytes_stream();
        let mut text = String::new();
        let mut told = false;
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
            if !told && text.contains("\"content\"") {
                let _ = tx.send(());
                told = true;
            }
        }
        text
    });
    rx.recv_timeout(Duration::from_secs(30)).expect("the stream started");
    server.shutdown();
    let text = rt.block_on(events).expect("stream task");
    assert!(
        text.trim_end().ends_with("data: [DONE]"),
        "the stream ran to its end: …{}",
        &text[text.len().saturating_sub(200)..]
    );
    let logged = server.store().run_results(server.state.traffic_run).expect("traffic");
    assert_eq!(logged.len(), 1, "the call is in the log after shutdown");
    let finish = logged[0].meta["finish_reason"].as_str().expect("finish reason");
    assert!(finish == "stop" || finish == "length", "the generation ran to its own end, not cancelled: {finish}");
    assert!(logged[0].answer.error.is_none() && logged[0].answer.tokens_out.is_some_and(|n| n > 0));
}

/// Server-sent events of a job until its last one: (event name, data) pairs.
async fn job_events(c: &Client, job: u64) -> Vec<(String, Value)> {
    let r = c.http.get(format!("{}/api/jobs/{job}/events", c.url)).bearer_auth(&c.token).send().await.expect("sends");
    assert_eq!(r.status(), StatusCode::OK);
    sse_events(r).await
}

/// How a job ended, from its events: the last event's name, or — when the job had already ended
/// before the stream began and only the snapshot came — the snapshot's status. With the result.
async fn job_end(c: &Client, job: u64) -> (String, Value) {
    let events = job_events(c, job).await;
    assert_eq!(events[0].0, "state", "a snapshot comes first: {events:?}");
    let (name, data) = events.last().expect("events").clone();
    let status = if name == "state" { data["status"].as_str().expect("status").to_string() } else { name };
    (status, data)
}

#[test]
fn runs_and_exports_started_from_the_api_stream_their_progress() {
    let server = TestServer::start(|_| {});
    let store = server.store();
    let set = store.create_test_set("tickets", None).expect("set");
    let cases = [
        ("I was charged twice for my plan", "billing"),
        ("The app crashes when I log in", "technical"),
        ("hello", "sales"),
    ];
    let new = cases
        .iter()
        .map(|(text, label)| benchtop_core::store::NewCase {
            vars: [("text".to_string(), json!(text))].into_iter().collect(),
            expected: Some(label.to_string()),
            tags: vec![],
        })
        .collect();
    store.add_cases(set, new).expect("cases");
    let c = server.client();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(async {
        let spec = json!({"name": "api run", "test_set": "tickets", "targets": [{"model": "support-triage"}], "assert": [{"type": "label-equals-expected"}]});
        let (status, _, started) = c.post("/api/runs", json!({"spec": spec})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{started}");
        let (job, run_id) = (started["job"].as_u64().expect("job"), started["run_id"].as_i64().expect("run id"));
        let (status, last) = job_end(&c, job).await;
        assert_eq!(status, "done", "{last}");
        assert_eq!(last["result"]["run_id"], run_id);
        let (status, state) = c.get(&format!("/api/jobs/{job}")).await;
        assert_eq!((status, state["status"].as_str(), state["done"].as_u64(), state["total"].as_u64()), (StatusCode::OK, Some("done"), Some(3), Some(3)));
        let (_, results) = c.get(&format!("/api/runs/{run_id}/results")).await;
        assert_eq!(results["results"].as_array().expect("results").len(), 3);

        // Export that run as JSONL, watched to the end; the files hold the three results.
        let (status, _, export) = c.post("/api/exports", json!({"format": "jsonl", "name": "api-export", "filter": {"run_id": run_id}})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{export}");
        let job = export["job"].as_u64().expect("job");
        let (status, last) = job_end(&c, job).await;
        assert_eq!(status, "done", "{last}");
        let dir = PathBuf::from(export["dir"].as_str().expect("dir"));
        let file = last["result"]["manifest"]["files"][0]["path"].as_str().expect("file").to_string();
        let text = std::fs::read_to_string(dir.join(&file)).expect("exported file");
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("I was charged twice"));
        // The same file as a download.
        let r = c.http.get(format!("{}/api/exports/api-export/files/{file}", c.url)).bearer_auth(&c.token).send().await.expect("sends");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-disposition"].to_str().expect("disposition").starts_with("attachment"));
        assert_eq!(r.text().await.expect("text"), text);
        let (status, body) = c.get("/api/exports/api-export/files/..%2Fapi-token").await;
        assert_eq!((status, error_type(&body)), (StatusCode::BAD_REQUEST, "invalid_request_error"), "no way out of the export folder");
        // A preview gives counts and first rows, and leaves nothing behind.
        let (status, _, preview) = c.post("/api/exports", json!({"format": "csv", "filter": {"run_id": run_id}, "preview": true})).await;
        assert_eq!(status, StatusCode::OK, "{preview}");
        let csv_file = preview["manifest"]["files"][0]["path"].as_str().expect("file");
        assert_eq!(preview["manifest"]["files"][0]["rows"], 3);
        let head = preview["head"][csv_file].as_array().expect("head");
        assert_eq!(head.len(), 4, "the header and three rows: {head:?}");
        let left: Vec<_> = std::fs::read_dir(dir.parent().expect("exports")).expect("dir").flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("api-export")], "no preview folder is left");
        let (status, _, body) = c.post(&format!("/api/jobs/{job}/cancel"), json!({})).await;
        assert_eq!((status, error_type(&body)), (StatusCode::CONFLICT, "invalid_request_error"));
        let (status, _, again) = c.post("/api/exports", json!({"format": "jsonl", "name": "api-export"})).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let (status, last) = job_end(&c, again["job"].as_u64().expect("job")).await;
        assert_eq!(status, "failed", "an earlier export is not overwritten: {last}");
        assert!(last["error"].as_str().expect("error").contains("\"overwrite\": true"), "{last}");

        // Bad requests say what is wrong.
        for (body, status, needle) in [
            (json!({"spec": {"test_set": "nope", "targets": [{"model": "support-triage"}]}}), StatusCode::NOT_FOUND, "no test set named `nope`"),
            (json!({"spec": {"test_set": "tickets", "targets": [{"model": "support-triage", "temprature": 1}]}}), StatusCode::BAD_REQUEST, "temprature"),
            (json!({"spec": {"tests": "x.csv", "targets": [{"model": "support-triage"}]}}), StatusCode::BAD_REQUEST, "import it first"),
            (json!({"spec": {"input": "hi", "targets": [{"model": "gpt", "provider": "nope"}]}}), StatusCode::BAD_REQUEST, "does not define"),
        ] {
            let (got, _, answer) = c.post("/api/runs", body.clone()).await;
            assert_eq!(got, status, "{body} → {answer}");
            assert!(answer["error"]["message"].as_str().expect("message").contains(needle), "{answer}");
        }
        let (status, _, body) = c.post("/api/exports", json!({"format": "jsonl", "name": "../escape"})).await;
        assert_eq!((status, error_type(&body)), (StatusCode::BAD_REQUEST, "invalid_request_error"));
        let (status, body) = c.get("/api/jobs/999").await;
        assert_eq!((status, error_type(&body)), (StatusCode::NOT_FOUND, "not_found_error"));
    });
}

#[test]
fn shutdown_stops_waiting_for_a_stuck_request_after_the_drain_timeout() {
    // A request held 5 s by the batcher (it waits for company), and a 300 ms drain timeout.
    let mut server = TestServer::start(|c| {
        c.batch.max_batch = 64;
        c.batch.max_wait = Duration::from_secs(5);
        c.drain_timeout = Duration::from_millis(300);
    });
    let c = server.client();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let pending = rt.spawn({
        let c = c.clone();
        async move {
            c.http
                .post(format!("{}/v1/predict", c.url))
                .bearer_auth(&c.token)
                .json(&json!({"model": "tiny-multilabel", "input": "held"}))
                .send()
                .await
        }
    });
    rt.block_on(wait_queued(&c, "tiny-multilabel", 1, 500));
    let started = std::time::Instant::now();
    server.shutdown();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown waited {took:?} for a request held 5 s");
    let _ = rt.block_on(pending);
}

#[test]
fn providers_are_kept_without_their_keys() {
    let server = TestServer::start(|_| {});
    let c = server.client();
    let rt = rt();
    // The key comes from the variable the provider names; this variable is this test's alone.
    std::env::set_var("BENCHTOP_TEST_PROVIDER_KEY_7F3A", "sk-test-secret-7f3a");
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = c.http.request(method, format!("{}{path}", c.url)).bearer_auth(&c.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        rt.block_on(async {
            let r = req.send().await.expect("sends");
            let status = r.status();
            (status, r.text().await.expect("text"))
        })
    };
    let config = json!({"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "key_env": "BENCHTOP_TEST_PROVIDER_KEY_7F3A", "models": ["gpt-x", "gpt-y"]});
    let (status, body) = send(reqwest::Method::PUT, "/api/providers/acme", Some(config));
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(
        reqwest::Method::PUT,
        "/api/providers/local",
        Some(json!({"kind": "openai", "base_url": "http://localhost:11434/v1", "no_key": true})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(reqwest::Method::GET, "/api/providers", None);
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("sk-test-secret-7f3a"), "the key never leaves: {body}");
    let list: Value = serde_json::from_str(&body).expect("json");
    let find = |name: &str| {
        list["providers"].as_array().expect("list").iter().find(|p| p["name"] == name).expect("listed").clone()
    };
    let acme = find("acme");
    assert_eq!(acme["models"], json!(["gpt-x", "gpt-y"]));
    assert_eq!(
        (acme["key"]["available"].as_bool(), acme["key"]["source"].as_str()),
        (Some(true), Some("env BENCHTOP_TEST_PROVIDER_KEY_7F3A"))
    );
    assert_eq!(find("local")["key"]["needed"], false);
    assert_eq!(server.store().saved_providers().expect("saved").len(), 2);

    for (path, body, needle) in [
        (
            "/api/providers/acme",
            json!({"kind": "openai", "base_url": "http://x/v1", "api_key": "sk-1"}),
            "never stored",
        ),
        ("/api/providers/acme", json!({"kind": "openai", "base_url": "ftp://x"}), "http://"),
        ("/api/providers/acme", json!({"kind": "cohere", "base_url": "http://x"}), "not a valid provider"),
        ("/api/providers/bad%20name", json!({"kind": "openai", "base_url": "http://x"}), "letters, digits"),
    ] {
        let (status, answer) = send(reqwest::Method::PUT, path, Some(body.clone()));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert!(answer.contains(needle), "{answer} lacks {needle}");
        assert!(!answer.contains("sk-1"), "a refused key is not echoed: {answer}");
    }
    assert_eq!(send(reqwest::Method::DELETE, "/api/providers/acme", None).0, StatusCode::NO_CONTENT);
    assert_eq!(send(reqwest::Method::DELETE, "/api/providers/acme", None).0, StatusCode::NOT_FOUND);
    assert_eq!(server.store().saved_providers().expect("saved").len(), 1);
}

/// Server-sent events of a streamed response until it ends: (event name, data) pairs.
async fn sse_events(r: reqwest::Response) -> Vec<(String, Value)> {
    use eventsource_stream::Eventsource;
    let mut stream = r.bytes_stream().eventsource();
    let mut events = Vec::new();
    while let Some(event) =
        tokio::time::timeout(Duration::from_secs(60), stream.next()).await.expect("an event within 60 s")
    {
        let event = event.expect("event");
        events.push((event.event.clone(), serde_json::from_str(&event.data).expect("json data")));
    }
    events
}

#[test]
fn the_playground_streams_each_targets_answer_and_records_it_for_feedback() {
    let server = TestServer::start(|_| {});
    let c = server.client();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(async {
        let spec = json!({
            "name": "playground",
            "input": "My card was charged twice",
            "prompt": {"system": "be brief"},
            "targets": [{"model": "tiny-qwen2", "max_tokens": 12, "temperature": 0}, {"model": "support-triage"}],
        });
        let r = c
            .http
            .post(format!("{}/api/playground", c.url))
            .bearer_auth(&c.token)
            .json(&json!({"spec": spec}))
            .send()
            .await
            .expect("sends");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let events = sse_events(r).await;
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"started"), "{names:?}");
        assert_eq!(names.last(), Some(&"done"), "{events:?}");
        assert_eq!(names.iter().filter(|n| **n == "cell").count(), 2);
        // The generator's text arrives in pieces before its cell is done, and adds up to its answer.
        let streamed: String = events
            .iter()
            .filter(|(n, d)| n == "text" && d["target"] == 0)
            .map(|(_, d)| d["delta"].as_str().expect("delta"))
            .collect();
        let done = &events.last().expect("done").1;
        let results = done["results"].as_array().expect("results");
        assert_eq!(results.len(), 2);
        let generated =
            results.iter().find(|r| r["answer"]["tokens_out"].as_i64().is_some()).expect("generation result");
        assert!(!streamed.is_empty());
        assert_eq!(generated["answer"]["output"].as_str(), Some(streamed.as_str()));
        let label = results.iter().find_map(|r| r["answer"]["label"].as_str()).expect("a label");
        assert_eq!(label, "billing");
        // Feedback on a playground answer lands on the recorded result.
        let id = generated["id"].as_i64().expect("id");
        let (status, _, _) = c.post("/api/feedback", json!({"result_id": id, "kind": "rating", "stars": 4})).await;
        assert_eq!(status, StatusCode::CREATED);
        let (_, fb) = c.get(&format!("/api/results/{id}/feedback")).await;
        assert_eq!(
            (fb["current"][0]["kind"].as_str(), fb["current"][0]["stars"].as_u64()),
            (Some("rating"), Some(4)),
            "{fb}"
        );
        // The run's results come with its targets' names.
        let run_id = events[0].1["run_id"].as_i64().expect("run id");
        let (_, listed) = c.get(&format!("/api/runs/{run_id}/results")).await;
        let names: HashSet<&str> =
            listed["targets"].as_array().expect("targets").iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(names, HashSet::from(["tiny-qwen2", "support-triage"]));
        // A playground request must have one input.
        let (status, _, body) = c
            .post("/api/playground", json!({"spec": {"test_set": "x", "targets": [{"model": "support-triage"}]}}))
            .await;
        assert_eq!((status, error_type(&body)), (StatusCode::BAD_REQUEST, "invalid_request_error"));
    });
}

#[test]
fn test_sets_are_edited_and_imported_over_the_api_and_the_review_queue_follows_feedback() {
    let server = TestServer::start(|_| {});
    let c = server.client();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(async {
        let (status, _, created) = c.post("/api/test-sets", json!({"name": "edits"})).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let set = created["id"].as_i64().expect("id");
        let (status, _, body) = c.post("/api/test-sets", json!({"name": "edits"})).await;
        assert_eq!((status, error_type(&body)), (StatusCode::CONFLICT, "conflict"));
        let cases = json!({"cases": [{"vars": {"text": "refund please"}, "expected": "billing"}, {"vars": {"text": "app crashes"}, "expected": "technical"}, {"vars": {"text": "refund please"}, "expected": "billing"}]});
        let (status, _, report) = c.post(&format!("/api/test-sets/{set}/cases"), cases).await;
        assert_eq!((status, report["inserted"].as_u64(), report["duplicates"].as_u64()), (StatusCode::OK, Some(2), Some(1)), "{report}");
        let (status, _, body) = c.post(&format!("/api/test-sets/{set}/cases"), json!({"cases": [{"vars": {}}]})).await;
        assert_eq!((status, error_type(&body)), (StatusCode::BAD_REQUEST, "invalid_request_error"));

        // Import: a dry run shows columns, rows and rejects, and adds nothing.
        let csv = "text,label,extra\nwhere is my invoice,billing,x\nlogin fails,technical,y\n,billing,z\n";
        let body = json!({"format": "csv", "content": csv, "vars": ["text"], "expected": "label", "dry_run": true});
        let (status, _, preview) = c.post(&format!("/api/test-sets/{set}/import"), body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{preview}");
        assert_eq!(preview["columns"], json!(["text", "label", "extra"]));
        assert_eq!(preview["preview"][0]["vars"], json!({"text": "where is my invoice"}));
        assert_eq!(preview["count"], 2, "{preview}");
        assert_eq!(preview["rejected"][0]["line"], 4, "the row without text is reported by its line: {preview}");
        assert_eq!(preview["preview"][0]["expected"], "billing");
        let (_, listed) = c.get(&format!("/api/test-sets/{set}/cases")).await;
        assert_eq!(listed["cases"].as_array().map(Vec::len), Some(2), "a dry run adds nothing");
        let mut real = body;
        real["dry_run"] = json!(false);
        let (status, _, imported) = c.post(&format!("/api/test-sets/{set}/import"), real).await;
        assert_eq!(status, StatusCode::OK, "{imported}");
        assert_eq!(imported["added"]["inserted"].as_u64(), Some(imported["count"].as_u64().expect("count")));
        let (status, _, body) = c.post(&format!("/api/test-sets/{set}/import"), json!({"format": "xlsx", "content": ""})).await;
        assert_eq!((status, error_type(&body)), (StatusCode::BAD_REQUEST, "invalid_request_error"));

        // Edit and delete a case.
        let (_, listed) = c.get(&format!("/api/test-sets/{set}/cases")).await;
        let first = listed["cases"][0]["id"].as_i64().expect("case id");
        let r = c.http.put(format!("{}/api/cases/{first}", c.url)).bearer_auth(&c.token).json(&json!({"vars": {"text": "refund now"}, "expected": "billing", "tags": ["edited"]})).send().await.expect("sends");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let (_, listed) = c.get(&format!("/api/test-sets/{set}/cases")).await;
        assert_eq!(listed["cases"][0]["vars"]["text"], "refund now");
        assert_eq!(listed["cases"][0]["tags"], json!(["edited"]));
        let before = listed["cases"].as_array().expect("cases").len();
        let r = c.http.delete(format!("{}/api/cases/{first}", c.url)).bearer_auth(&c.token).send().await.expect("sends");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let (_, listed) = c.get(&format!("/api/test-sets/{set}/cases")).await;
        assert_eq!(listed["cases"].as_array().map(Vec::len), Some(before - 1));

        // A run over the set fills the review queue; feedback takes a result out of it.
        let (status, _, started) = c.post("/api/runs", json!({"spec": {"name": "r", "test_set": "edits", "targets": [{"model": "support-triage"}]}})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{started}");
        let (end, _) = job_end(&c, started["job"].as_u64().expect("job")).await;
        assert_eq!(end, "done");
        let (status, queue) = c.get("/api/review?queue=unrated").await;
        assert_eq!(status, StatusCode::OK);
        let items = queue["items"].as_array().expect("items").clone();
        assert_eq!(items.len(), before - 1, "{queue}");
        let id = items[0]["result_id"].as_i64().expect("id");
        c.post("/api/feedback", json!({"result_id": id, "kind": "thumb", "up": true})).await;
        let (_, queue) = c.get("/api/review?queue=unrated").await;
        assert_eq!(queue["items"].as_array().map(Vec::len), Some(items.len() - 1));
        assert!(queue["items"].as_array().expect("items").iter().all(|i| i["result_id"] != id));
        let (status, body) = c.get("/api/review?queue=everything").await;
        assert_eq!((status, error_type(&body)), (StatusCode::BAD_REQUEST, "invalid_request_error"));

        let r = c.http.delete(format!("{}/api/test-sets/{set}", c.url)).bearer_auth(&c.token).send().await.expect("sends");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);

        // Settings and prices.
        let (status, settings) = c.get("/api/settings").await;
        assert_eq!(status, StatusCode::OK);
        assert!(settings["prices"]["gpt-4o-mini"]["input_per_mtok"].is_number(), "{settings}");
        let r = c.http.put(format!("{}/api/prices", c.url)).bearer_auth(&c.token).json(&json!({"my-model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}})).send().await.expect("sends");
        assert_eq!(r.status(), StatusCode::OK);
        let (_, settings) = c.get("/api/settings").await;
        assert_eq!(settings["prices"]["my-model"]["output_per_mtok"], 2.0);
        let r = c.http.put(format!("{}/api/prices", c.url)).bearer_auth(&c.token).json(&json!({"m": {"input_per_mtok": -1.0, "output_per_mtok": 2.0}})).send().await.expect("sends");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    });
}

#[test]
fn the_built_ui_is_served_at_the_root_with_a_strict_policy_and_api_paths_stay_json() {
    let ui = tempfile::tempdir().expect("ui dir");
    std::fs::write(ui.path().join("index.html"), "<!doctype html><title>Benchtop</title><div id=root></div>")
        .expect("index");
    std::fs::create_dir(ui.path().join("assets")).expect("assets");
    std::fs::write(ui.path().join("assets/app.js"), "console.log(1)").expect("js");
    let dir = ui.path().to_path_buf();
    let server = TestServer::start(move |config| config.ui_dir = Some(dir));
    let rt = rt();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let r = rt.block_on(http.get(format!("{}{path}", server.url)).send()).expect("sends");
        let (status, headers) = (r.status(), r.headers().clone());
        (status, headers, rt.block_on(r.text()).expect("text"))
    };
    // No token needed for the page itself; it comes with the policy.
    let (status, headers, body) = get("/");
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<div id=root>"));
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"), "{csp}");
    let (status, headers, body) = get("/assets/app.js");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "console.log(1)"));
    assert!(headers["content-type"].to_str().expect("type").contains("javascript"));
    // A client-side route gets the page.
    let (status, _, body) = get("/runs/12");
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<div id=root>"));
    // The APIs keep their rules: token first, JSON 404s.
    assert_eq!(get("/api/models").0, StatusCode::UNAUTHORIZED);
    assert_eq!(get("/api/nothing").0, StatusCode::UNAUTHORIZED);
    let (status, body) = rt.block_on(server.client().get("/api/nothing"));
    assert_eq!((status, error_type(&body)), (StatusCode::NOT_FOUND, "not_found_error"));
    // A foreign Host is refused even for the page (DNS rebinding).
    let r = rt.block_on(http.get(format!("{}/", server.url)).header("host", "evil.example:80").send()).expect("sends");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = rt.block_on(http.post(format!("{}/", server.url)).send()).expect("sends");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn model_folders_are_validated_and_added_with_clear_errors() {
    let server = TestServer::start(|_| {});
    let c = server.client();
    let fixture = repo().join("models/fixtures/tiny-multilabel");
    let rt = rt();
    let (status, _, checked) = rt.block_on(c.post("/api/models/validate", json!({"dir": fixture})));
    assert_eq!(status, StatusCode::OK, "{checked}");
    assert_eq!(checked["folder"]["task"]["task"], "classification");
    assert!(checked["outputs"].as_array().is_some_and(|o| !o.is_empty()));
    let (status, _, body) = rt.block_on(c.post("/api/models/validate", json!({"dir": "/nonexistent/folder"})));
    assert_eq!((status, error_type(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_model"));
    let (status, _, added) = rt.block_on(c.post("/api/models", json!({"dir": fixture, "name": "mine"})));
    assert_eq!(status, StatusCode::CREATED, "{added}");
    // Installed among the user's models (which `benchtop serve` searches; this test's catalog does not).
    let dir = PathBuf::from(added["dir"].as_str().expect("dir"));
    assert_eq!(dir, server.state.data_dir.join("models/mine"));
    let (status, _, again) = rt.block_on(c.post("/api/models/validate", json!({"dir": dir})));
    assert_eq!((status, again["folder"]["name"].as_str()), (StatusCode::OK, Some("mine")));
    let (status, _, body) = rt.block_on(c.post("/api/models", json!({"dir": fixture, "name": "mine"})));
    assert_eq!((status, error_type(&body)), (StatusCode::CONFLICT, "conflict"));
    assert!(body["error"]["message"].as_str().expect("message").contains("`name`"), "{body}");
    let (status, _, body) = rt.block_on(c.post("/api/models", json!({"dir": fixture, "name": "../escape"})));
    assert_eq!((status, error_type(&body)), (StatusCode::BAD_REQUEST, "invalid_request_error"));
}

#[test]
fn a_model_is_downloaded_from_the_hub_as_a_job_with_byte_progress() {
    let mock = hub::MockHub::with_fixture("acme/tiny-labels", &repo().join("models/fixtures/tiny-multilabel"));
    let url = mock.url.clone();
    let server = TestServer::start(move |config| config.hub_endpoint = Some(url));
    let c = server.client();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(async {
        let (status, _, started) = c.post("/api/models/download", json!({"repo": "acme/tiny-labels"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{started}");
        assert_eq!(started["name"], "tiny-labels");
        let events = job_events(&c, started["job"].as_u64().expect("job")).await;
        let progress: Vec<u64> =
            events.iter().filter(|(n, _)| n == "progress").filter_map(|(_, d)| d["done"].as_u64()).collect();
        assert!(progress.len() >= 2 && progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
        let (last, data) = events.last().expect("events");
        assert_eq!(last, "done", "{events:?}");
        assert_eq!(data["result"]["validation"]["folder"]["task"]["task"], "classification", "{data}");
        let total = events.iter().find_map(|(n, d)| (n == "progress").then(|| d["total"].as_u64()).flatten());
        assert_eq!(progress.last().copied(), total, "the last progress event reaches the total");
        assert!(server.state.data_dir.join("models/tiny-labels/model.onnx").is_file());
        // Again: the name is taken.
        let (status, _, body) = c.post("/api/models/download", json!({"repo": "acme/tiny-labels"})).await;
        assert_eq!((status, error_type(&body)), (StatusCode::CONFLICT, "conflict"));
        // An unknown repository fails as a job, saying why.
        let (_, _, started) = c.post("/api/models/download", json!({"repo": "acme/nothing-here"})).await;
        let (end, data) = job_end(&c, started["job"].as_u64().expect("job")).await;
        assert_eq!(end, "failed", "{data}");
        assert!(data["error"].as_str().is_some_and(|e| e.contains("acme/nothing-here")), "{data}");
    });
}
