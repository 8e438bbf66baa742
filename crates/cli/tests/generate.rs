//! `benchtop generate` and `benchtop models validate|add|remove|download` with the real binary,
//! the decoder fixtures, real ONNX Runtime, and a Hub stand-in on 127.0.0.1.

#[path = "../../core/tests/common/hub.rs"]
mod hub;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> String {
    repo().join("models/fixtures").join(name).to_string_lossy().into_owned()
}

fn benchtop(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_benchtop"));
    cmd.args(args)
        .env("BENCHTOP_DATA_DIR", data)
        .env_remove("BENCHTOP_ORT_LIB")
        .env_remove("BENCHTOP_MODELS_DIR")
        .env_remove("HF_ENDPOINT")
        .env_remove("HF_TOKEN")
        .stdin(Stdio::null());
    cmd
}

fn run(data: &Path, args: &[&str]) -> Output {
    benchtop(data, args).output().expect("benchtop runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), text(&out.stderr));
    text(&out.stdout)
}

fn golden_case(model: &str, name: &str) -> Value {
    let path = repo().join("models/build/golden").join(format!("generate-{model}.json"));
    let golden: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("run ./dev test to write the goldens")).expect("JSON");
    golden["cases"].as_array().expect("cases").iter().find(|c| c["name"] == name).expect("case").clone()
}

#[test]
fn generate_streams_the_reference_text_and_reports_usage() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A chat through the template, greedy: the Python reference's text, token for token.
    let case = golden_case("tiny-qwen2", "chat-default-system/penalty-1.0");
    let prompt = case["messages"][0]["content"].as_str().expect("prompt");
    let greedy = ["--temperature", "0", "--repetition-penalty", "1", "-n", "40"];
    let model = fixture("tiny-qwen2");
    let mut args = vec!["generate", "-m", &model];
    args.extend(greedy);
    let out = run(tmp.path(), &[&args[..], &["--json", prompt]].concat());
    let json: Value = serde_json::from_str(&ok(out)).expect("JSON");
    assert_eq!(json["text"], case["text"]);
    assert_eq!(json["usage"]["completion_tokens"], 40);
    assert_eq!(json["usage"]["prompt_tokens"], case["prompt_ids"].as_array().expect("ids").len());
    assert_eq!((json["finish_reason"].as_str(), json["sampled"].as_bool()), (Some("length"), Some(false)));

    // Streaming to stdout: the same text (plus a final newline); the summary on stderr.
    let out = run(tmp.path(), &[&args[..], &[prompt]].concat());
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), format!("{}\n", case["text"].as_str().expect("text")));
    assert!(
        text(&out.stderr).contains("40 new tokens") && text(&out.stderr).contains("greedy"),
        "{}",
        text(&out.stderr)
    );

    // A model without a chat template takes the prompt as plain text, and says so.
    let case = golden_case("tiny-gpt2", "short/penalty-1.3");
    let out = run(
        tmp.path(),
        &[
            "generate",
            "-m",
            &fixture("tiny-gpt2"),
            "--temperature",
            "0",
            "--repetition-penalty",
            "1.3",
            "-n",
            "40",
            "--json",
            "The app crashes when",
        ],
    );
    assert!(text(&out.stderr).contains("no chat template"));
    assert_eq!(serde_json::from_str::<Value>(&ok(out)).expect("JSON")["text"], case["text"]);

    // The prompt can come on stdin.
    let mut child = benchtop(tmp.path(), &["generate", "-m", &fixture("tiny-gpt2"), "--raw", "-n", "3", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"Once upon a time").expect("write");
    let json: Value = serde_json::from_str(&ok(child.wait_with_output().expect("runs"))).expect("JSON");
    assert_eq!(json["usage"]["completion_tokens"], 3);
}

#[test]
fn the_same_seed_gives_the_same_text() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = fixture("tiny-qwen2");
    let sample = |seed: &str| -> Value {
        let out = run(tmp.path(), &["generate", "-m", &model, "--seed", seed, "-n", "24", "--json", "Hello there"]);
        serde_json::from_str(&ok(out)).expect("JSON")
    };
    let (a, b, c) = (sample("7"), sample("7"), sample("8"));
    assert_eq!(a["text"], b["text"]);
    assert_ne!(a["text"], c["text"]);
    assert_eq!((a["seed"].as_u64(), a["sampled"].as_bool()), (Some(7), Some(true)));
    // --stop ends the text before the stop sequence (taken from the seeded text itself).
    let full = a["text"].as_str().expect("text");
    let stop: String = full.chars().skip(6).take(3).collect();
    let out = run(
        tmp.path(),
        &["generate", "-m", &model, "--seed", "7", "-n", "24", "--json", "--stop", &stop, "Hello there"],
    );
    let stopped: Value = serde_json::from_str(&ok(out)).expect("JSON");
    let expected = &full[..full.find(&stop).expect("stop text is in the text")];
    assert_eq!((stopped["text"].as_str(), stopped["finish_reason"].as_str()), (Some(expected), Some("stop")));
}

#[test]
fn generate_errors_have_exit_codes_and_fixes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let gpt2 = fixture("tiny-gpt2");
    let cases: [(&[&str], i32, &str); 6] = [
        (&["generate", "-m", &gpt2, "--system", "Be brief", "Hi"], 3, "--raw"),
        (&["generate", "-m", &gpt2, "--top-p", "1.5", "Hi"], 3, "top_p"),
        (&["generate", "-m", &fixture("tiny-cls-embed"), "Hi"], 3, "needs a generation model"),
        (&["generate", "-m", "no-such-model", "Hi"], 4, "benchtop models"),
        (&["generate", "-m", &gpt2], 3, "no prompt"),
        (&["generate", "-m", &gpt2, "--raw", &"word ".repeat(3000)], 3, "context of"),
    ];
    for (args, code, needle) in cases {
        let out = run(tmp.path(), args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(needle), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn ctrl_c_stops_the_generation_and_keeps_the_text() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Without the KV cache each token recomputes the whole sequence: slow enough to interrupt.
    let mut child = benchtop(
        tmp.path(),
        &["generate", "-m", &fixture("tiny-qwen2"), "--no-cache", "--raw", "-n", "2000", "--seed", "1", "Tell me"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawns");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).expect("text starts streaming");
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("read");
    let out = child.wait_with_output().expect("exits");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cancelled"), "{stderr}");
    assert!(!rest.is_empty() || first[0] != 0, "the text so far stays");
}

#[test]
fn models_validate_add_and_remove() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    let out = ok(run(data, &["models", "validate", &fixture("tiny-qwen2")]));
    assert!(out.contains("tiny-qwen2: OK, generation model"), "{out}");
    assert!(out.contains("2 layers, 2 KV heads × 16 dims, fp16 KV cache (256 bytes/token)"), "{out}");
    let json: Value =
        serde_json::from_str(&ok(run(data, &["models", "validate", "--json", &fixture("tiny-gpt2")]))).expect("JSON");
    assert_eq!(json["generation"]["layout"]["kv_type"], "f32");
    assert!(json["warnings"][0].as_str().expect("warning").contains("no chat template"));

    ok(run(data, &["models", "add", &fixture("tiny-gpt2"), "--name", "storyteller"]));
    let list = ok(run(data, &["models"]));
    assert!(list.contains("storyteller") && list.contains("benchtop generate"), "{list}");
    let out = ok(run(data, &["generate", "-m", "storyteller", "-n", "2", "--json", "Hi"]));
    assert!(out.contains("\"model\": \"storyteller\""));
    let again = run(data, &["models", "add", &fixture("tiny-gpt2"), "--name", "storyteller"]);
    assert_eq!(again.status.code(), Some(3));
    assert!(text(&again.stderr).contains("already installed"));

    // Deleting asks first; without a terminal it needs --yes. Bundled models are never deleted.
    let out = run(data, &["models", "remove", "storyteller"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--yes") && data.join("models/storyteller").is_dir());
    assert!(ok(run(data, &["models", "remove", "--yes", "storyteller"])).contains("Removed `storyteller`"));
    assert!(!data.join("models/storyteller").exists());
    let out = run(data, &["models", "remove", "--yes", "minilm-l6-v2"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out.stderr).contains("does not delete"), "{}", text(&out.stderr));
}

#[test]
fn models_download_from_a_hub() {
    let hub = hub::MockHub::with_fixture("acme/tiny-chat", &repo().join("models/fixtures/tiny-qwen2"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    let out = ok(run(data, &["models", "download", "acme/tiny-chat", "--endpoint", &hub.url]));
    assert!(out.contains("Downloaded `tiny-chat`") && out.contains("tiny-chat: OK, generation model"), "{out}");
    ok(run(data, &["generate", "-m", "tiny-chat", "-n", "3", "Hi"]));
    let out = run(data, &["models", "download", "acme/tiny-chat", "--endpoint", &hub.url]);
    assert_eq!(out.status.code(), Some(3), "an installed name is refused");

    let out = run(data, &["models", "download", "acme/nothing-here", "--endpoint", &hub.url]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out.stderr).contains("no repository `acme/nothing-here`"));

    // A gated repository: refused without a token (exit 8), fetched with HF_TOKEN, which is never shown.
    let secret = "hf_cliSECRETtoken0123456789";
    hub.state().token = Some(secret.into());
    let out = run(data, &["models", "download", "acme/tiny-chat", "--name", "gated", "--endpoint", &hub.url]);
    assert_eq!(out.status.code(), Some(8));
    assert!(text(&out.stderr).contains("HF_TOKEN"));
    let out = benchtop(data, &["-vv", "models", "download", "acme/tiny-chat", "--name", "gated", "--json"])
        .env("HF_ENDPOINT", &hub.url)
        .env("HF_TOKEN", secret)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(secret) && !text(&out.stderr).contains(secret), "the token leaked");
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["folder"]["name"], "gated");
}
