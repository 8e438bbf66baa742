//! The `benchtop` binary as a user runs it: real models, real ONNX Runtime, real files and pipes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    repo().join("models/fixtures")
}

fn benchtop(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_benchtop"));
    cmd.args(args).env_remove("BENCHTOP_ORT_LIB").env_remove("ORT_DYLIB_PATH").env_remove("BENCHTOP_MODELS_DIR");
    cmd
}

fn run(args: &[&str]) -> Output {
    benchtop(args).stdin(Stdio::null()).output().expect("benchtop runs")
}

fn run_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child =
        benchtop(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawns");
    child.stdin.take().expect("stdin").write_all(input).expect("writes stdin");
    child.wait_with_output().expect("finishes")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn jsonl(o: &Output) -> Vec<Value> {
    stdout(o).lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect()
}

#[test]
fn models_lists_defaults_and_extra_folders() {
    let fixtures = fixtures();
    let out = run(&["models", "--models-dir", fixtures.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "minilm-l6-v2",
        "384-d, mean pooling, normalised",
        "support-triage",
        "6 labels (softmax): billing, technical, account, sales, feedback, other",
        "tiny-multilabel",
        "4 labels (sigmoid)",
        "ONNX Runtime: ",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let json: Value = serde_json::from_slice(&run(&["models", "--json"]).stdout).expect("JSON");
    let names: Vec<&str> =
        json["models"].as_array().expect("models").iter().filter_map(|m| m["name"].as_str()).collect();
    assert!(names.contains(&"minilm-l6-v2") && names.contains(&"support-triage"));
    assert_eq!(json["runtime"]["found"], true);
}

#[test]
fn predict_prints_labels_for_people_and_for_scripts() {
    let out =
        run(&["predict", "I was charged twice for my subscription", "The app crashes when I open the settings page"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert!(lines[0].starts_with("billing ") && lines[1].starts_with("technical "), "{lines:?}");

    let out = run(&["predict", "--json", "-k", "2", "How do I enable two-factor authentication?"]);
    let json: Value = serde_json::from_slice(&out.stdout).expect("one JSON array");
    assert_eq!(json[0]["label"], "account");
    assert_eq!(json[0]["scores"].as_array().expect("scores").len(), 2);
    assert_eq!(json[0]["text"], "How do I enable two-factor authentication?");
}

#[test]
fn embed_reads_stdin_line_by_line() {
    let out = run_with_stdin(&["embed", "--jsonl"], "first line\n\nsecond line\r\nthird\n".as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = jsonl(&out);
    assert_eq!(rows.len(), 3, "blank lines are skipped");
    assert_eq!(rows.iter().map(|r| r["line"].as_u64().expect("line")).collect::<Vec<_>>(), [1, 3, 4]);
    assert_eq!(rows[1]["text"], "second line", "CRLF is stripped");
    assert_eq!(rows[0]["embedding"].as_array().expect("vector").len(), 384);
}

#[test]
fn files_stream_in_batches_and_keep_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("tickets.txt");
    let texts: Vec<String> = (0..700)
        .map(|i| {
            if i % 2 == 0 {
                format!("I was charged twice, invoice {i}")
            } else {
                format!("The app crashes on screen {i}")
            }
        })
        .collect();
    std::fs::write(&path, texts.join("\n")).expect("write");
    let out = run(&["predict", "--jsonl", "--batch-size", "16", "--file", path.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = jsonl(&out);
    assert_eq!(rows.len(), 700);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["index"], i);
        assert_eq!(row["text"], texts[i].as_str());
        assert_eq!(row["label"], if i % 2 == 0 { "billing" } else { "technical" }, "row {i}");
    }
}

#[test]
fn bad_input_gets_exit_code_3_and_a_line_number() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, b"fine line\nbroken \xff\xfe line\nnever reached\n").expect("write");
    let out = run(&["embed", "--jsonl", "--batch-size", "1", "--file", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("line 2 is not valid UTF-8"), "{}", stderr(&out));

    let huge = tmp.path().join("huge.txt");
    std::fs::write(&huge, vec![b'a'; (1 << 20) + 10]).expect("write");
    let out = run(&["embed", "--file", huge.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("line 1 is longer than 1 MiB"), "{}", stderr(&out));

    let out = run(&["embed", "--file", tmp.path().join("missing.txt").to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("missing.txt"));

    let out = run_with_stdin(&["predict"], b"\n  \n");
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("no input"), "{}", stderr(&out));

    let out = run(&["predict", "--model", "minilm-l6-v2", "hello"]);
    assert_eq!(out.status.code(), Some(3), "wrong task is bad input: {}", stderr(&out));
    assert!(stderr(&out).contains("is an embedding model; this needs a classification model"));
}

#[test]
fn long_and_unusual_text_works() {
    let long = "word ".repeat(20_000);
    let out = run(&["embed", "--json", &long, "", "🎉🚀", "我的账户被锁定了", "لا أستطيع تسجيل الدخول"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json[0]["truncated"], true);
    assert_eq!(json[0]["tokens"], 256);
    assert_eq!(json.as_array().expect("array").len(), 5);
}

#[test]
fn unknown_or_broken_models_exit_4_and_say_what_exists() {
    let out = run(&["predict", "--model", "no-such-model", "hello"]);
    assert_eq!(out.status.code(), Some(4));
    let err = stderr(&out);
    assert!(
        err.contains("no model named `no-such-model`")
            && err.contains("available: minilm-l6-v2, support-triage")
            && err.contains("benchtop models"),
        "{err}"
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("half-downloaded");
    std::fs::create_dir(&dir).expect("mkdir");
    for f in ["tokenizer.json", "config.json"] {
        std::fs::copy(fixtures().join("tiny-multilabel").join(f), dir.join(f)).expect("copy");
    }
    std::fs::write(dir.join("model.onnx"), b"\x08\x07garbage").expect("write");
    let out = run(&["predict", "--model", dir.to_str().expect("utf8"), "hello"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("model.onnx cannot be loaded") && stderr(&out).contains("corrupt"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_or_wrong_runtime_exits_5_with_the_fix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("libonnxruntime.so");
    let out = run(&["embed", "--ort-lib", missing.to_str().expect("utf8"), "hello"]);
    assert_eq!(out.status.code(), Some(5));
    let err = stderr(&out);
    assert!(
        err.contains("ONNX Runtime was not found") && err.contains("./dev start") && err.contains("BENCHTOP_ORT_LIB"),
        "{err}"
    );

    let not_a_library = tmp.path().join("notes.txt");
    std::fs::write(&not_a_library, "hello").expect("write");
    let out = run(&["embed", "--ort-lib", not_a_library.to_str().expect("utf8"), "hello"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("could not load ONNX Runtime"), "{}", stderr(&out));

    let cache = benchtop_cache();
    let old = cache.join("onnxruntime/1.20.1/libonnxruntime.so.1.20.1");
    assert!(old.is_file(), "the test setup fetches ONNX Runtime 1.20.1 to test this ({})", old.display());
    let out = run(&["embed", "--ort-lib", old.to_str().expect("utf8"), "hello"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("it is ONNX Runtime 1.20.1, and Benchtop needs 1.22 or newer"), "{}", stderr(&out));

    // The variable works like the flag.
    let out =
        benchtop(&["embed", "hello"]).env("BENCHTOP_ORT_LIB", &missing).stdin(Stdio::null()).output().expect("runs");
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["models", "--help"],
        &["embed", "--help"],
        &["predict", "--help"],
        &["generate", "--help"],
        &["models", "download", "--help"],
    ] {
        let out = run(args);
        assert!(out.status.success());
        assert!(stdout(&out).contains("Usage: benchtop"));
    }
    insta::assert_snapshot!("help", stdout(&run(&["--help"])));
    insta::assert_snapshot!("predict_help", stdout(&run(&["predict", "--help"])));
    insta::assert_snapshot!("generate_help", stdout(&run(&["generate", "--help"])));
    insta::assert_snapshot!("models_help", stdout(&run(&["models", "--help"])));
    let out = run(&["predict", "--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

fn benchtop_cache() -> PathBuf {
    benchtop_core::dirs::Dirs::resolve(None).cache
}
