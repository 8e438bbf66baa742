//! `benchtop run` as CI uses it: the real binary, a real SQLite log, the local classifier, and
//! remote targets served by the mock LLM server. Includes kill -9 and resume, and a search for a
//! provider key in everything Benchtop writes.

#[path = "../../core/tests/common/mock_llm.rs"]
mod mock_llm;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mock_llm::{Fault, MockLlm};
use serde_json::Value;

const KEY: &str = "sk-cli-SECRET-key-4242424242";

fn benchtop(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_benchtop"));
    cmd.args(args)
        .env("BENCHTOP_DATA_DIR", data)
        .env("MOCK_API_KEY", KEY)
        .env_remove("BENCHTOP_ORT_LIB")
        .env_remove("BENCHTOP_MODELS_DIR")
        .stdin(Stdio::null());
    cmd
}

fn run(data: &Path, args: &[&str]) -> Output {
    benchtop(data, args).output().expect("benchtop runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A run file: the local classifier and the mock LLM, cases with the LLM's scripted label.
fn write_run(dir: &Path, mock: &MockLlm, cases: &[(&str, &str, &str)], extra: &str) -> String {
    let mut csv = String::from("text,oracle,expected\n");
    for (t, o, e) in cases {
        csv.push_str(&format!("\"{t}\",{o},{e}\n"));
    }
    std::fs::write(dir.join("cases.csv"), csv).expect("write cases");
    let yaml = format!(
        "name: cli run\ntests: cases.csv\nprompt:\n  template: \"{{{{ text }}}} ANSWER:{{{{ oracle }}}}\"\n\
         providers:\n  - name: mock\n    kind: openai\n    base_url: {}\n    max_attempts: 3\n\
         targets:\n  - model: support-triage\n  - provider: mock\n    model: gpt-4o-mini\n    name: llm\n{extra}",
        mock.openai_base()
    );
    let path = dir.join("run.yaml");
    std::fs::write(&path, yaml).expect("write run file");
    path.to_string_lossy().into_owned()
}

#[test]
fn a_run_prints_a_table_writes_json_and_junit_and_fails_ci_on_failed_assertions() {
    let mock = MockLlm::start();
    mock.state().key = Some(KEY.into());
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = write_run(
        tmp.path(),
        &mock,
        &[
            ("I was charged twice for my subscription", "billing", "billing"),
            ("The app crashes when I open settings", "technical", "technical"),
        ],
        "assert:\n  - type: label-equals-expected\n",
    );
    let data = tmp.path().join("data");
    let json_out = tmp.path().join("out.json");
    let xml_out = tmp.path().join("out.xml");
    let out =
        run(&data, &["run", &config, "-o", json_out.to_str().expect("utf8"), "-o", xml_out.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("support-triage") && table.contains("llm") && table.contains("100.0%"), "{table}");
    assert!(table.contains("Agreement support-triage vs llm: 2/2 cases"), "{table}");
    let summary: Value = serde_json::from_slice(&std::fs::read(&json_out).expect("json")).expect("JSON");
    assert_eq!(summary["status"], "done");
    let junit = std::fs::read_to_string(&xml_out).expect("xml");
    assert!(junit.contains("tests=\"4\"") && junit.contains("failures=\"0\""), "{junit}");

    // The LLM now answers wrongly for one case: exit 9, the failure named, JUnit counts it.
    let config = write_run(
        tmp.path(),
        &mock,
        &[
            ("I was charged twice for my subscription", "billing", "billing"),
            ("The app crashes when I open settings", "sales", "technical"),
        ],
        "assert:\n  - type: label-equals-expected\n",
    );
    let out = run(&data, &["run", &config, "-o", xml_out.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(9), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("expected label \"technical\", got \"sales\""), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("1 failed assertion(s)"));
    assert!(std::fs::read_to_string(&xml_out).expect("xml").contains("failures=\"1\""));

    // A run file with a mistake is refused before anything runs.
    std::fs::write(tmp.path().join("bad.yaml"), "tests: cases.csv\ntargets:\n  - model: x\n    provider: nowhere\n")
        .expect("write");
    let before = mock.state().requests.len();
    let out = run(&data, &["run", tmp.path().join("bad.yaml").to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("provider `nowhere`"), "{}", text(&out.stderr));
    assert_eq!(mock.state().requests.len(), before);
}

#[test]
fn kill_9_during_a_run_then_resume_runs_only_the_unfinished_cells() {
    let mock = MockLlm::start();
    mock.state().latency = Duration::from_millis(40);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(String, &str, &str)> = (0..120).map(|i| (format!("question number {i}"), "x", "x")).collect();
    let cases: Vec<(&str, &str, &str)> = cases.iter().map(|(t, o, e)| (t.as_str(), *o, *e)).collect();
    let config = write_run(tmp.path(), &mock, &cases, "cache: false\n");
    let config_path = tmp.path().join("remote-only.yaml");
    std::fs::write(
        &config_path,
        std::fs::read_to_string(&config).expect("read").replace("  - model: support-triage\n", ""),
    )
    .expect("write");
    let data = tmp.path().join("data");
    let mut child = benchtop(&data, &["run", config_path.to_str().expect("utf8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    // Kill it once some, but not all, cells are done.
    let db = data.join("benchtop.db");
    let started = Instant::now();
    let count = |db: &Path| -> i64 {
        rusqlite::Connection::open(db)
            .and_then(|c| c.query_row("SELECT count(*) FROM results", [], |r| r.get(0)))
            .unwrap_or(0)
    };
    while count(&db) < 20 {
        assert!(started.elapsed() < Duration::from_secs(60), "the run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let done = count(&db);
    assert!((20..120).contains(&done), "{done} cells done at the kill");
    let asked = mock.settled_requests() as i64;

    let out = run(&data, &["run", "--resume", "1", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("{} cells to go ({done} done before)", 120 - done)),
        "{}",
        text(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&db).expect("open");
    let (rows, cells): (i64, i64) = conn
        .query_row("SELECT count(*), count(DISTINCT case_id) FROM results WHERE run_id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("count");
    assert_eq!((rows, cells), (120, 120), "every cell once");
    // Cells in flight at the kill were asked but not recorded; they are asked again, nothing else.
    let again = mock.state().requests.len() as i64 - asked;
    assert_eq!(again, 120 - done);
    let status: String = conn.query_row("SELECT status FROM runs WHERE id = 1", [], |r| r.get(0)).expect("status");
    assert_eq!(status, "done");
}

#[test]
fn a_provider_key_never_reaches_the_log_exports_reports_or_messages() {
    let mock = MockLlm::start();
    mock.state().key = Some(KEY.into());
    // Faults that make servers talk: a refused key echoed back (as APIs do), errors, bad JSON.
    mock.state().script.extend([Fault::Unauthorized, Fault::ServerError, Fault::BadRequest, Fault::Malformed]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(String, &str, &str)> = (0..8).map(|i| (format!("ticket {i}"), "billing", "billing")).collect();
    let cases: Vec<(&str, &str, &str)> = cases.iter().map(|(t, o, e)| (t.as_str(), *o, *e)).collect();
    let config = write_run(tmp.path(), &mock, &cases, "assert:\n  - type: label-equals-expected\n");
    let data = tmp.path().join("data");
    let out = run(&data, &["-vv", "run", &config, "-o", tmp.path().join("o.json").to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(9), "the refused key fails a cell: {}", text(&out.stderr));
    let mut haystacks = vec![("stdout", out.stdout.clone()), ("stderr", out.stderr.clone())];
    let (export, report) = (tmp.path().join("export"), tmp.path().join("report.html"));
    for args in [
        vec!["export", "--format", "jsonl", "--out", export.to_str().expect("utf8")],
        vec!["report", "1", "--out", report.to_str().expect("utf8")],
        vec!["history", "ticket"],
    ] {
        let out = run(&data, &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        haystacks.push(("stdout", out.stdout));
        haystacks.push(("stderr", out.stderr));
    }
    for dir in [&data, &tmp.path().join("export")] {
        for entry in std::fs::read_dir(dir).expect("dir").flatten() {
            if entry.path().is_file() {
                haystacks.push(("file", std::fs::read(entry.path()).expect("read")));
            }
        }
    }
    for file in ["report.html", "o.json"] {
        haystacks.push(("file", std::fs::read(tmp.path().join(file)).expect("read")));
    }
    assert!(haystacks.len() > 10);
    for (what, bytes) in &haystacks {
        assert!(!bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()), "the key is in a {what}");
    }
    // The key did reach the provider (so the search above was not vacuous).
    assert!(mock.state().requests.len() >= 8);
}

#[test]
fn keys_show_where_a_key_comes_from_but_never_the_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = run(tmp.path(), &["keys", "show", "mock"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("MOCK_API_KEY") && !text(&out.stdout).contains(KEY), "{}", text(&out.stdout));
    let out = benchtop(tmp.path(), &["keys", "show", "other"]).env("OTHER_API_KEY", KEY).output().expect("runs");
    assert!(text(&out.stdout).contains("a key is set") && !text(&out.stdout).contains(KEY));
}
