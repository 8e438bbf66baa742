//! The model manager: validate, add, remove, and download from a Hub stand-in on 127.0.0.1.

mod common;

use std::sync::atomic::AtomicBool;

use benchtop_core::engine::{Catalog, ErrorKind, GenerateParams, Generator, ModelFolder, Prompt, Task};
use benchtop_core::models::hub::{Check, Hub, HubError, Progress};
use benchtop_core::models::{self, ManageError};
use common::hub::{MockHub, COMMIT};
use common::{fixture, runtime, scratch_copy};

const REPO: &str = "test-org/tiny-qwen2-onnx";

#[test]
fn validate_reports_task_graph_and_memory() {
    let rt = runtime();
    let v = models::validate(&rt, &fixture("tiny-qwen2")).expect("valid");
    assert_eq!(v.folder.task, Task::Generation);
    assert!(v.inputs.iter().any(|i| i == "past_key_values.1.value") && v.inputs.contains(&"position_ids".into()));
    assert!(v.outputs.contains(&"logits".into()) && v.outputs.contains(&"present.0.key".into()));
    let g = v.generation.as_ref().expect("generation details");
    assert_eq!((g.layout.layers, g.layout.kv_heads, g.layout.head_dim), (2, 2, 16));
    assert!(g.chat_template);
    // fp16 KV: 2 (key, value) × 2 layers × 2 heads × 16 dims × 2 bytes.
    assert_eq!(g.kv_bytes_per_token, 256);
    let onnx = std::fs::metadata(fixture("tiny-qwen2/model.onnx")).expect("model").len();
    assert_eq!(v.weights_bytes, onnx);
    assert_eq!(v.estimated_bytes, onnx + 256 * g.context as u64);
    assert!(v.files.iter().any(|f| f.name == "generation_config.json"));
    assert!(v.measured_bytes.is_some(), "Linux reports resident memory");
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);

    let gpt2 = models::validate(&rt, &fixture("tiny-gpt2")).expect("valid");
    assert!(gpt2.warnings.iter().any(|w| w.contains("no chat template")), "{:?}", gpt2.warnings);

    let embed = models::validate(&rt, &fixture("tiny-cls-embed")).expect("valid");
    assert!(embed.generation.is_none() && embed.estimated_bytes == embed.weights_bytes);
    assert!(embed.inputs.contains(&"input_ids".into()));

    let (_tmp, broken) = scratch_copy("tiny-qwen2");
    std::fs::remove_file(broken.join("tokenizer.json")).expect("rm");
    let err = models::validate(&rt, &broken).expect_err("missing tokenizer");
    assert_eq!(err.kind(), ErrorKind::InvalidModel);
    assert!(err.to_string().contains("tokenizer.json is missing"), "{err}");
    std::fs::copy(fixture("tiny-qwen2/tokenizer.json"), broken.join("tokenizer.json")).expect("cp");
    std::fs::write(broken.join("model.onnx"), b"not a graph").expect("write");
    let err = models::validate(&rt, &broken).expect_err("corrupt graph");
    assert!(err.to_string().contains("model.onnx cannot be loaded"), "{err}");
}

#[test]
fn add_copies_a_valid_folder_and_remove_takes_it_away() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tempdir");
    let user = tmp.path().join("models");
    let (dir, v) = models::add(&rt, &fixture("tiny-gpt2"), &user, Some("my-gpt")).expect("added");
    assert_eq!(dir, user.join("my-gpt"));
    assert_eq!(v.folder.name, "my-gpt");
    for f in ["model.onnx", "tokenizer.json", "config.json"] {
        assert_eq!(
            std::fs::read(dir.join(f)).expect("copied"),
            std::fs::read(fixture("tiny-gpt2").join(f)).expect("src")
        );
    }
    let catalog = Catalog::new(vec![user.clone()]);
    assert_eq!(catalog.find("my-gpt").expect("listed").task, Task::Generation);

    // The same name again, a bad name, a broken folder: refused, nothing left behind.
    let err = models::add(&rt, &fixture("tiny-gpt2"), &user, Some("my-gpt")).expect_err("exists");
    assert!(matches!(err, ManageError::Exists { .. }) && err.to_string().contains("models remove my-gpt"), "{err}");
    assert!(matches!(models::add(&rt, &fixture("tiny-gpt2"), &user, Some("../up")), Err(ManageError::BadName { .. })));
    let (_b, broken) = scratch_copy("tiny-qwen2");
    std::fs::remove_file(broken.join("config.json")).expect("rm");
    let err = models::add(&rt, &broken, &user, None).expect_err("broken");
    assert!(err.to_string().contains("config.json is missing"), "{err}");
    let names: Vec<String> = std::fs::read_dir(&user)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["my-gpt"], "no staging folders or half copies");
    // The default name is the source folder's.
    let (dir, _) = models::add(&rt, &fixture("tiny-qwen2"), &user, None).expect("added");
    assert_eq!(dir, user.join("tiny-qwen2"));

    let bytes = models::remove(&user, "my-gpt", None).expect("removed");
    assert!(bytes > 1_000_000 && !user.join("my-gpt").exists());
    assert!(models::remove(&user, "tiny-qwen2", None).is_ok());
    // Only the user's folder is ever touched: a bundled model is named, not deleted.
    let err = models::remove(&user, "tiny-cls-embed", Some(&fixture("tiny-cls-embed"))).expect_err("not added");
    assert!(err.to_string().contains("does not delete") && fixture("tiny-cls-embed").join("model.onnx").is_file());
    assert!(matches!(models::remove(&user, "..", None), Err(ManageError::NotAdded { .. })));
    assert!(std::fs::read_dir(&user).expect("dir").next().is_none(), "nothing left over");
}

fn runtime_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio").block_on(f)
}

fn collect_progress() -> (std::sync::Arc<std::sync::Mutex<Vec<Progress>>>, impl FnMut(&Progress) + Send) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&seen);
    (seen, move |p: &Progress| sink.lock().expect("lock").push(p.clone()))
}

#[test]
fn download_picks_the_files_verifies_them_and_installs_a_working_model() {
    let hub = MockHub::with_fixture(REPO, &fixture("tiny-qwen2"));
    hub.state().files.insert("onnx/model.onnx_data".into(), vec![7u8; 20_000]);
    let client = Hub::new(Some(&hub.url), None).expect("client");
    let plan = runtime_block_on(client.plan(REPO, "main", None)).expect("plan");
    assert_eq!(plan.commit, COMMIT);
    let picked: Vec<(&str, &str)> = plan.files.iter().map(|f| (f.remote.as_str(), f.local.as_str())).collect();
    assert_eq!(
        picked,
        [
            ("onnx/model.onnx", "model.onnx"),
            ("onnx/model.onnx_data", "model.onnx_data"),
            ("config.json", "config.json"),
            ("tokenizer.json", "tokenizer.json"),
            ("generation_config.json", "generation_config.json"),
            ("tokenizer_config.json", "tokenizer_config.json"),
        ]
    );
    assert!(matches!(plan.files[0].check, Check::Sha256(_)) && matches!(plan.files[2].check, Check::GitBlob(_)));

    let tmp = tempfile::tempdir().expect("tempdir");
    let (seen, mut progress) = collect_progress();
    let dir = runtime_block_on(client.download(&plan, tmp.path(), "qwen-dl", &mut progress)).expect("downloaded");
    assert_eq!(dir, tmp.path().join("qwen-dl"));
    let seen = seen.lock().expect("lock");
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done), "progress only grows");
    let last = seen.last().expect("progress reported");
    assert_eq!((last.done, last.total, last.resumed), (plan.total_bytes(), plan.total_bytes(), 0));
    let names: Vec<String> = models::list_files(&dir).into_iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "config.json",
            "generation_config.json",
            "model.onnx",
            "model.onnx_data",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
    assert!(!tmp.path().join(".download-qwen-dl").exists(), "the staging folder became the model");

    // The downloaded model generates exactly what the fixture does.
    let rt = runtime();
    let params = GenerateParams { max_new_tokens: Some(12), temperature: Some(0.0), ..GenerateParams::default() };
    let run = |dir: &std::path::Path| {
        let generator = Generator::load(&rt, ModelFolder::open(dir).expect("folder")).expect("loads");
        generator
            .generate(&Prompt::Text("My invoice is wrong".into()), &params, &AtomicBool::new(false), &mut |_| {})
            .expect("generates")
            .token_ids
    };
    assert_eq!(run(&dir), run(&fixture("tiny-qwen2")));

    // `--file` picks another graph; an installed name is refused before anything is fetched.
    let plan = runtime_block_on(client.plan(REPO, COMMIT, Some("onnx/model_fp16.onnx"))).expect("plan");
    assert_eq!(plan.files[0].remote, "onnx/model_fp16.onnx");
    assert!(plan.files.iter().all(|f| f.local != "model.onnx_data"), "model.onnx's data is not model_fp16's");
    let requests = hub.state().requests.len();
    let err = runtime_block_on(client.download(&plan, tmp.path(), "qwen-dl", &mut |_| {})).expect_err("exists");
    assert!(matches!(err, HubError::Name(ManageError::Exists { .. })), "{err}");
    assert_eq!(hub.state().requests.len(), requests);
}

#[test]
fn an_interrupted_download_resumes_with_a_range_request() {
    let hub = MockHub::with_fixture(REPO, &fixture("tiny-qwen2"));
    hub.state().cut_after.insert("onnx/model.onnx".into(), 200_000);
    // No retries: this is a download killed half-way and started again later.
    let client = Hub::new(Some(&hub.url), None).expect("client").with_retries(0);
    let tmp = tempfile::tempdir().expect("tempdir");
    let plan = runtime_block_on(client.plan(REPO, "main", None)).expect("plan");
    let err = runtime_block_on(client.download(&plan, tmp.path(), "resumed", &mut |_| {})).expect_err("cut");
    assert!(matches!(err, HubError::Interrupted { .. }), "{err}");
    assert!(err.to_string().contains("run the command again to resume"), "{err}");
    let part = tmp.path().join(".download-resumed/model.onnx.part");
    assert_eq!(std::fs::metadata(&part).expect("partial file kept").len(), 200_000);
    assert!(!tmp.path().join("resumed").exists(), "no half model is installed");
    assert!(Catalog::new(vec![tmp.path().to_path_buf()]).list().is_empty(), "the staging folder is not listed");

    let (seen, mut progress) = collect_progress();
    let dir = runtime_block_on(client.download(&plan, tmp.path(), "resumed", &mut progress)).expect("resumed");
    let model_requests: Vec<Option<String>> =
        hub.state().requests.iter().filter(|(p, _)| p == "onnx/model.onnx").map(|(_, r)| r.clone()).collect();
    assert_eq!(model_requests, [None, Some("bytes=200000-".to_string())]);
    assert_eq!(seen.lock().expect("lock").last().expect("progress").resumed, 200_000);
    assert_eq!(
        std::fs::read(dir.join("model.onnx")).expect("model"),
        std::fs::read(fixture("tiny-qwen2/model.onnx")).expect("fixture")
    );

    // Within one download, a dropped connection is resumed by itself.
    hub.state().cut_after.insert("tokenizer.json".into(), 5_000);
    let client = Hub::new(Some(&hub.url), None).expect("client");
    let dir = runtime_block_on(client.download(&plan, tmp.path(), "retried", &mut |_| {})).expect("retried");
    let ranges: Vec<Option<String>> =
        hub.state().requests.iter().filter(|(p, _)| p == "tokenizer.json").map(|(_, r)| r.clone()).collect();
    assert_eq!(ranges[ranges.len() - 2..], [None, Some("bytes=5000-".to_string())]);
    assert_eq!(
        std::fs::read(dir.join("tokenizer.json")).expect("t"),
        std::fs::read(fixture("tiny-qwen2/tokenizer.json")).expect("f")
    );
}

#[test]
fn corrupted_bytes_are_caught_and_the_bad_copy_is_dropped() {
    let hub = MockHub::with_fixture(REPO, &fixture("tiny-qwen2"));
    hub.state().corrupt.insert("tokenizer.json".into());
    let client = Hub::new(Some(&hub.url), None).expect("client");
    let tmp = tempfile::tempdir().expect("tempdir");
    let plan = runtime_block_on(client.plan(REPO, "main", None)).expect("plan");
    let err = runtime_block_on(client.download(&plan, tmp.path(), "m", &mut |_| {})).expect_err("corrupt");
    assert!(matches!(&err, HubError::Corrupt { file, check: "sha256", .. } if file == "tokenizer.json"), "{err}");
    assert!(!tmp.path().join(".download-m/tokenizer.json.part").exists());
    // Files verified before the bad one are kept; the next attempt fetches only what is missing.
    hub.state().corrupt.clear();
    let before = hub.state().requests.len();
    runtime_block_on(client.download(&plan, tmp.path(), "m", &mut |_| {})).expect("second attempt");
    let again: Vec<String> = hub.state().requests[before..].iter().map(|(p, _)| p.clone()).collect();
    assert!(!again.contains(&"onnx/model.onnx".to_string()) && again.contains(&"tokenizer.json".to_string()));
}

#[test]
fn hub_errors_say_what_to_do_and_never_show_the_token() {
    let hub = MockHub::with_fixture(REPO, &fixture("tiny-qwen2"));
    let client = Hub::new(Some(&hub.url), None).expect("client");
    let err = runtime_block_on(client.plan("test-org/nope", "main", None)).expect_err("404");
    assert!(matches!(err, HubError::NotFound { .. }) && err.to_string().contains("check the spelling"), "{err}");
    let err = runtime_block_on(client.plan(REPO, "no-such-branch", None)).expect_err("404");
    assert!(err.to_string().contains("revision `no-such-branch`"), "{err}");
    assert!(matches!(runtime_block_on(client.plan("just-a-name", "main", None)), Err(HubError::BadRepo(_))));
    let err = runtime_block_on(client.plan(REPO, "main", Some("onnx/missing.onnx"))).expect_err("no such file");
    assert!(err.to_string().contains("onnx/model.onnx, onnx/model_fp16.onnx"), "{err}");

    // A gated repository: no token, a wrong token, the right one.
    let secret = "hf_SECRETsecretSECRET1234567890";
    hub.state().token = Some(secret.into());
    let err = runtime_block_on(client.plan(REPO, "main", None)).expect_err("401");
    assert!(matches!(err, HubError::Unauthorized { token_sent: false, .. }) && err.to_string().contains("HF_TOKEN"));
    let wrong = Hub::new(Some(&hub.url), Some("hf_wrongWRONGwrong".into())).expect("client");
    let err = runtime_block_on(wrong.plan(REPO, "main", None)).expect_err("401");
    assert!(err.to_string().contains("the token that was sent cannot") && !err.to_string().contains("hf_wrong"));
    let right = Hub::new(Some(&hub.url), Some(secret.into())).expect("client").with_retries(0);
    let plan = runtime_block_on(right.plan(REPO, "main", None)).expect("authorised");
    hub.state().cut_after.insert("config.json".into(), 10);
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = runtime_block_on(right.download(&plan, tmp.path(), "gated", &mut |_| {})).expect_err("cut");
    assert!(!format!("{err} {err:?}").contains(secret), "the token leaked: {err:?}");
    runtime_block_on(right.download(&plan, tmp.path(), "gated", &mut |_| {})).expect("downloads with the token");

    // Nothing listening; a repository with no ONNX graph.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let err = runtime_block_on(Hub::new(Some(&url), None).expect("client").plan(REPO, "main", None)).expect_err("down");
    assert!(matches!(err, HubError::Unreachable { .. }) && err.to_string().contains("HF_ENDPOINT"), "{err}");
    hub.state().files.retain(|path, _| !path.ends_with(".onnx"));
    let err = runtime_block_on(right.plan(REPO, "main", None)).expect_err("no graph");
    assert!(err.to_string().contains("optimum-cli export onnx"), "{err}");
    assert!(matches!(Hub::new(Some("ftp://example"), None), Err(HubError::BadEndpoint(..))));
}
