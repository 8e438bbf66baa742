//! Comparison runs end to end: a real SQLite log, the real local classifier, and remote targets
//! served by the mock LLM server (with faults).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use benchtop_core::engine::{Catalog, Engine, EngineOptions};
use benchtop_core::providers::{ApiKey, PriceTable, Provider, ProviderConfig, RetryPolicy};
use benchtop_core::runs::{Cases, RunEvent, RunOptions, RunSpec, Runner, Summary, TargetSpec};
use benchtop_core::store::{NewCase, RunStatus, Store};
use common::mock_llm::{Fault, MockLlm};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-run-test-KEY-0123456789abcdef";

fn spec(mock: &MockLlm, yaml_targets: &str, extra: &str) -> RunSpec {
    let yaml = format!(
        "name: test run\ntest_set: tickets\nproviders:\n  - name: oai\n    kind: openai\n    base_url: {}\n    read_timeout_s: 0.3\n    max_attempts: 3\n  - name: claude\n    kind: anthropic\n    base_url: {}\n    read_timeout_s: 0.3\n    max_attempts: 3\ntargets:\n{yaml_targets}\n{extra}",
        mock.openai_base(),
        mock.url
    );
    RunSpec::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn providers(spec: &RunSpec) -> Vec<Provider> {
    let fast =
        RetryPolicy { base: Duration::from_millis(5), max_wait: Duration::from_millis(20), ..RetryPolicy::default() };
    spec.providers
        .iter()
        .map(|c: &ProviderConfig| {
            Provider::new(c.clone(), ApiKey::new(KEY), PriceTable::built_in())
                .expect("provider")
                .with_retry(RetryPolicy { max_attempts: c.max_attempts, ..fast.clone() })
        })
        .collect()
}

fn engine() -> Arc<Engine> {
    let dirs = common::dirs();
    Arc::new(Engine::new(common::runtime(), Catalog::new(vec![dirs.default_models()]), EngineOptions::default()))
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    set: i64,
}

fn setup(cases: Vec<NewCase>) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open_in(dir.path()).expect("store"));
    let set = store.create_test_set("tickets", None).expect("set");
    store.add_cases(set, cases).expect("cases");
    Setup { _dir: dir, store, set }
}

fn case(text: &str, oracle: &str, expected: &str) -> NewCase {
    let vars = json!({"text": text, "oracle": oracle}).as_object().expect("object").clone();
    NewCase { vars, expected: Some(expected.into()), tags: vec![] }
}

async fn run(
    runner: &Runner,
    spec: &RunSpec,
    set: i64,
    options: RunOptions,
    cancel_after: Option<usize>,
) -> (Summary, Vec<RunEvent>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let cancel = CancellationToken::new();
    let (sink, token, cells) = (Arc::clone(&events), cancel.clone(), Arc::new(AtomicUsize::new(0)));
    let on_event = Arc::new(move |e: RunEvent| {
        if matches!(e, RunEvent::Cell(_)) && cancel_after.is_some_and(|n| cells.fetch_add(1, Ordering::SeqCst) + 1 >= n)
        {
            token.cancel();
        }
        sink.lock().expect("lock").push(e);
    });
    let summary = runner.run(spec, Cases::TestSet(set), options, on_event, cancel).await.expect("run");
    let events = events.lock().expect("lock").clone();
    (summary, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_classifier_and_an_llm_side_by_side_with_assertions_and_agreement() {
    let mock = MockLlm::start();
    let s = setup(vec![
        case("I was charged twice for my subscription", "billing", "billing"),
        case("The app crashes when I open settings", "technical", "technical"),
        case("How do I reset my password?", "billing", "account"),
        case("my password is hunter2, please log me in", "account", "account"),
    ]);
    let targets =
        "  - model: support-triage\n  - provider: oai\n    model: gpt-4o-mini\n    name: llm\n    temperature: 0";
    let extra = "prompt:\n  system: You label support messages.\n  template: \"{{ text }} ANSWER:{{ oracle }}\"\nvalidate:\n  required: [text]\n  forbidden: ['(?i)password is']\nassert:\n  - type: label-equals-expected\n  - type: latency-ms\n    max: 10000";
    let spec = spec(&mock, targets, extra);
    let runner = Runner::new(Arc::clone(&s.store), Some(engine()), providers(&spec));
    let (summary, events) = run(&runner, &spec, s.set, RunOptions::default(), None).await;
    assert_eq!(summary.status, RunStatus::Done);
    assert!(matches!(events[0], RunEvent::Started { cells: 8, already_done: 0, .. }));
    assert_eq!(events.len(), 9);

    // The forbidden case never reached the LLM (3 requests for 4 cases) and errs in both cells.
    assert_eq!(mock.state().requests.len(), 3);
    let system = mock.state().requests[0].1["messages"][0].clone();
    assert_eq!(system["content"], "You label support messages.");
    for t in &summary.targets {
        assert_eq!((t.cells, t.errors), (4, 1), "{}", t.name);
    }
    let llm = summary.targets.iter().find(|t| t.name == "llm").expect("llm");
    assert_eq!((llm.passed, llm.failed), (2, 1), "the LLM says billing for the password question");
    assert!(llm.cost_usd.expect("priced") > 0.0 && llm.tokens_in > 0);
    let local = summary.targets.iter().find(|t| t.name == "support-triage").expect("local");
    assert_eq!(local.passed + local.failed, 3);
    assert!(summary
        .failures
        .iter()
        .any(|f| f.reasons[0].contains("validation failed") && f.reasons[0].contains("forbidden")));

    // Agreement: classifier vs LLM on the three validated cases.
    let agreement = &summary.agreements[0];
    assert_eq!((agreement.a.as_str(), agreement.b.as_str(), agreement.compared), ("support-triage", "llm", 3));
    assert_eq!(agreement.agreed + agreement.disagreements.len(), 3);
    let total: usize = agreement.confusion.values().flat_map(|row| row.values()).sum();
    assert_eq!(total, 3);

    // Everything is in the log: one result per cell, assertion verdicts as feedback.
    let results = s.store.run_results(summary.run_id).expect("results");
    assert_eq!(results.len(), 8);
    let thumbs = s.store.current_feedback(results[0].id).expect("feedback");
    assert!(results[0].answer.error.is_some() || !thumbs.is_empty());

    // The same run again: every answer comes from the cache, no new requests.
    let (again, _) = run(&runner, &spec, s.set, RunOptions::default(), None).await;
    assert_eq!(mock.state().requests.len(), 3);
    assert_eq!(again.targets.iter().map(|t| t.cached).sum::<usize>(), 6);
    // …unless the cache is bypassed.
    run(&runner, &spec, s.set, RunOptions { no_cache: true, ..RunOptions::default() }, None).await;
    assert_eq!(mock.state().requests.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cases_with_twenty_percent_faults_end_with_a_result_or_error_in_every_cell() {
    let mock = MockLlm::start();
    {
        let mut state = mock.state();
        state.fault_rate = 0.2;
        state.random_faults = vec![
            Fault::RateLimit { retry_after_ms: 5 },
            Fault::ServerError,
            Fault::Overloaded,
            Fault::Hang(Duration::from_millis(800)),
            Fault::Truncated,
            Fault::Malformed,
        ];
        state.key = Some(KEY.into());
    }
    let cases: Vec<NewCase> = (0..1000).map(|i| case(&format!("message number {i}"), "x", "x")).collect();
    let s = setup(cases);
    let targets = "  - provider: oai\n    model: gpt-4o-mini\n    concurrency: 16\n  - provider: claude\n    model: claude-3-5-haiku\n    concurrency: 16";
    let spec = spec(&mock, targets, "cache: false");
    let runner = Runner::new(Arc::clone(&s.store), None, providers(&spec));
    let (summary, events) = run(&runner, &spec, s.set, RunOptions::default(), None).await;
    assert_eq!(summary.status, RunStatus::Done);
    assert_eq!(events.len(), 2001, "a report for every cell");
    let results = s.store.run_results(summary.run_id).expect("results");
    assert_eq!(results.len(), 2000, "every cell holds a result or an error");
    let cells: std::collections::HashSet<_> = results.iter().map(|r| (r.case_id, r.target_id)).collect();
    assert_eq!(cells.len(), 2000, "no cell twice");
    let errors = results.iter().filter(|r| r.answer.error.is_some()).count();
    // Each attempt fails with p = 0.2; three attempts fail with 0.8 %, and a stream cut after text
    // was shown is not retried: a few dozen errors, far from none and far from many.
    assert!(errors > 0 && errors < 200, "{errors} errors");
    for r in &results {
        match (&r.answer.error, &r.answer.output) {
            (None, Some(text)) => assert!(text.ends_with(&r.input), "{text} for {}", r.input),
            (Some(e), _) => assert!(!e.is_empty()),
            (None, None) => panic!("a cell with neither answer nor error"),
        }
    }
    let requests = mock.state().requests.len();
    assert!((2000..=6000).contains(&requests), "attempts are bounded: {requests}");
    assert!(!std::fs::read(s.store.path()).expect("db").windows(KEY.len()).any(|w| w == KEY.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_resumes_without_repeating_finished_cells() {
    let mock = MockLlm::start();
    mock.state().latency = Duration::from_millis(20);
    let cases: Vec<NewCase> = (0..40).map(|i| case(&format!("question {i}"), "x", "x")).collect();
    let s = setup(cases);
    let spec = spec(&mock, "  - provider: oai\n    model: gpt-4o-mini\n    concurrency: 4", "cache: false");
    let runner = Runner::new(Arc::clone(&s.store), None, providers(&spec));
    let (first, _) = run(&runner, &spec, s.set, RunOptions::default(), Some(10)).await;
    assert_eq!(first.status, RunStatus::Cancelled);
    let done = s.store.run_results(first.run_id).expect("results").len();
    assert!((10..40).contains(&done), "{done} cells done before the cancel took effect");
    let asked = mock.settled_requests();

    let resume = RunOptions { resume: Some(first.run_id), ..RunOptions::default() };
    let (second, events) = run(&runner, &spec, s.set, resume, None).await;
    assert_eq!((second.run_id, second.status), (first.run_id, RunStatus::Done));
    assert!(
        matches!(events[0], RunEvent::Started { cells, already_done, .. } if cells == 40 - done && already_done == done)
    );
    assert_eq!(s.store.run_results(first.run_id).expect("results").len(), 40);
    assert_eq!(mock.state().requests.len() - asked, 40 - done, "only unfinished cells ran again");
}

#[test]
fn run_files_are_checked_before_anything_runs() {
    let bad = |yaml: &str, needle: &str| {
        let err = RunSpec::from_yaml(yaml).expect_err(yaml).to_string();
        assert!(err.contains(needle), "{err}");
    };
    bad("input: hi\ntargets: []", "`targets` is empty");
    bad("targets:\n  - model: m", "exactly one of `tests`");
    bad("input: hi\ntargets:\n  - model: m\n    provider: nope", "does not define");
    bad("input: hi\ntargets:\n  - model: m\nassert:\n  - type: regex\n    pattern: '('", "not valid");
    bad("input: hi\ntargets:\n  - model: m\n  - model: m", "two targets are named `m`");
    bad("input: hi\ntargets:\n  - model: m\n    temprature: 1", "temprature");
    bad("input: hi\nprompt:\n  template: '{{ text'\ntargets:\n  - model: m", "not a valid template");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_one_target_streams_its_text_for_remote_and_local_models() {
    let mock = MockLlm::start();
    let s = setup(vec![case("unused", "x", "x")]);
    let spec = spec(&mock, "  - model: unused", "");
    let dirs = common::dirs();
    let catalog = Catalog::new(vec![dirs.default_models(), common::repo().join("models/fixtures")]);
    let engine = Arc::new(Engine::new(common::runtime(), catalog, EngineOptions::default()));
    let runner = Runner::new(Arc::clone(&s.store), Some(engine), providers(&spec));
    let ask = |target: TargetSpec| {
        let streamed = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&streamed);
        let runner = &runner;
        async move {
            let on_text = Arc::new(move |piece: &str| sink.lock().expect("lock").push_str(piece));
            let answer =
                runner.ask(&target, "Where is my refund?", Some("Be kind."), on_text, CancellationToken::new()).await;
            (answer.expect("asked"), streamed.lock().expect("lock").clone())
        }
    };
    let remote = TargetSpec {
        provider: Some("claude".into()),
        model: "claude-3-5-haiku".into(),
        stream: true,
        ..TargetSpec::default()
    };
    let (answer, streamed) = ask(remote).await;
    assert_eq!(answer.output.as_deref(), Some("[claude-3-5-haiku] Where is my refund?"));
    assert_eq!(streamed, "[claude-3-5-haiku] Where is my refund?");
    assert!(answer.ttft_ms.is_some() && answer.tokens_out.is_some());

    let local = TargetSpec {
        model: "tiny-qwen2".into(),
        max_tokens: Some(12),
        temperature: Some(0.0),
        ..TargetSpec::default()
    };
    let (answer, streamed) = ask(local).await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    assert_eq!(answer.tokens_out, Some(12));
    assert_eq!(answer.output.as_deref(), Some(streamed.as_str()), "the streamed pieces are the text");

    let classifier = TargetSpec { model: "support-triage".into(), ..TargetSpec::default() };
    let (answer, streamed) = ask(classifier).await;
    assert!(answer.label.is_some() && answer.scores.is_some() && streamed.is_empty());
}
