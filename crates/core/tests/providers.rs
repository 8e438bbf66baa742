//! Remote providers against the mock LLM server on 127.0.0.1 (OpenAI and Anthropic wire formats).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use benchtop_core::providers::{
    ApiKey, ChatRequest, Message, PriceTable, Provider, ProviderConfig, ProviderError, ProviderKind, RetryPolicy, Role,
};
use common::mock_llm::{Fault, MockLlm};

const KEY: &str = "sk-mock-0123456789abcdefSECRET";

fn provider(mock: &MockLlm, kind: ProviderKind, tune: impl FnOnce(&mut ProviderConfig)) -> Provider {
    let base = match kind {
        ProviderKind::OpenAi => mock.openai_base(),
        ProviderKind::Anthropic => mock.url.clone(),
    };
    let mut config = ProviderConfig::new("mock", kind, &base);
    config.read_timeout_s = 2.0;
    tune(&mut config);
    let fast =
        RetryPolicy { base: Duration::from_millis(20), max_wait: Duration::from_millis(100), ..RetryPolicy::default() };
    let fast = RetryPolicy { max_attempts: config.max_attempts, ..fast };
    Provider::new(config, ApiKey::new(KEY), PriceTable::built_in()).expect("provider").with_retry(fast)
}

fn request(text: &str, stream: bool) -> ChatRequest {
    ChatRequest {
        model: "gpt-4o-mini".into(),
        system: Some("Be brief.".into()),
        messages: vec![Message::new(Role::User, text)],
        temperature: Some(0.2),
        max_tokens: Some(64),
        stop: vec!["\n\n".into()],
        seed: Some(42),
        stream,
        ..ChatRequest::default()
    }
}

async fn chat(
    p: &Provider,
    r: &ChatRequest,
) -> (Result<benchtop_core::providers::ChatResponse, ProviderError>, String) {
    let mut streamed = String::new();
    let result = p.chat(r, &mut |piece| streamed.push_str(piece)).await;
    (result, streamed)
}

#[tokio::test]
async fn both_wire_formats_answer_streamed_and_whole() {
    let mock = MockLlm::start();
    mock.state().key = Some(KEY.into());
    for kind in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
        let p = provider(&mock, kind, |_| {});
        for stream in [false, true] {
            let (result, streamed) = chat(&p, &request("Grüße, wie geht's? 🙂", stream)).await;
            let r = result.unwrap_or_else(|e| panic!("{kind:?} stream={stream}: {e}"));
            assert_eq!(r.text, "[gpt-4o-mini] Grüße, wie geht's? 🙂", "{kind:?} stream={stream}");
            assert_eq!(streamed, if stream { r.text.as_str() } else { "" });
            let usage = r.usage.expect("usage reported");
            // Words: "Be brief." (Anthropic counts the system prompt; OpenAI gets it as a message) + 4.
            assert_eq!((usage.input, usage.output), (6, 5), "{kind:?} stream={stream}");
            assert!(r.cost_usd.expect("gpt-4o-mini is priced") > 0.0);
            assert_eq!(r.ttft.is_some(), stream);
            assert_eq!(r.attempts, 1);
            assert!(matches!(r.finish_reason.as_deref(), Some("stop" | "end_turn")));
        }
    }
    // What went over the wire, in each format.
    let requests = mock.state().requests.clone();
    let openai = &requests[1].1;
    assert_eq!(openai["messages"][0], serde_json::json!({"role": "system", "content": "Be brief."}));
    assert_eq!((openai["max_tokens"].as_u64(), openai["seed"].as_u64()), (Some(64), Some(42)));
    assert_eq!(openai["stop"][0], "\n\n");
    assert_eq!(openai["stream_options"]["include_usage"], true);
    let anthropic = &requests[3].1;
    assert_eq!(anthropic["system"], "Be brief.");
    assert_eq!(anthropic["messages"].as_array().expect("messages").len(), 1);
    assert_eq!(anthropic["stop_sequences"][0], "\n\n");
    assert!(anthropic.get("seed").is_none(), "Anthropic takes no seed");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_honouring_retry_after() {
    let mock = MockLlm::start();
    mock.state().script.extend([Fault::RateLimit { retry_after_ms: 300 }, Fault::ServerError, Fault::Overloaded]);
    let p = provider(&mock, ProviderKind::Anthropic, |_| {});
    let (result, _) = chat(&p, &request("hello", true)).await;
    let r = result.expect("succeeds on the fourth attempt");
    assert_eq!(r.attempts, 4);
    assert!(r.latency >= Duration::from_millis(300), "waited as asked: {:?}", r.latency);
    assert_eq!(mock.state().requests.len(), 4);

    // Attempts are bounded.
    mock.state().script.extend([Fault::ServerError; 5]);
    let p = provider(&mock, ProviderKind::OpenAi, |c| c.max_attempts = 3);
    let err = chat(&p, &request("hello", false)).await.0.expect_err("gives up");
    assert!(matches!(err, ProviderError::Server { status: 500, attempts: 3, .. }), "{err}");
    assert!(err.to_string().contains("server had an error"), "{err}");
    assert_eq!(mock.state().requests.len(), 7);
    mock.state().script.clear();

    // A server asking for a wait longer than the policy allows fails at once.
    mock.state().script.push_back(Fault::RateLimit { retry_after_ms: 600_000 });
    let err = chat(&p, &request("hello", false)).await.0.expect_err("too long to wait");
    assert!(
        matches!(err, ProviderError::RateLimited { attempts: 1, .. }) && err.to_string().contains("600 s"),
        "{err}"
    );
}

#[tokio::test]
async fn hangs_cut_streams_and_bad_json_are_told_apart() {
    let mock = MockLlm::start();
    let p = provider(&mock, ProviderKind::OpenAi, |c| c.read_timeout_s = 0.3);
    // A hang times out and is retried.
    mock.state().script.push_back(Fault::Hang(Duration::from_secs(2)));
    let r = chat(&p, &request("hi", false)).await.0.expect("second attempt");
    assert_eq!(r.attempts, 2);
    mock.state().script.extend([Fault::Hang(Duration::from_secs(2)); 5]);
    let err = chat(&p, &request("hi", false)).await.0.expect_err("always hangs");
    assert!(matches!(err, ProviderError::Timeout { attempts: 5, .. }), "{err}");
    mock.state().script.clear();

    // Whole answers cut short or malformed are retried (nothing was shown yet).
    for fault in [Fault::Truncated, Fault::Malformed] {
        mock.state().script.push_back(fault);
        let r = chat(&p, &request("hi", false)).await.0.unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!((r.attempts, r.text.as_str()), (2, "[gpt-4o-mini] hi"));
    }
    // A stream that breaks after text was shown is an error, not a repeated beginning.
    for kind in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
        let p = provider(&mock, kind, |_| {});
        for fault in [Fault::Truncated, Fault::Malformed] {
            mock.state().script.push_back(fault);
            let (result, streamed) = chat(&p, &request("a longer question here", true)).await;
            let err = result.expect_err("stream broke");
            assert!(matches!(err, ProviderError::Protocol { attempts: 1, .. }), "{kind:?} {fault:?}: {err}");
            assert!(!streamed.is_empty() && "[gpt-4o-mini] a longer question here".starts_with(&streamed));
        }
    }
}

#[tokio::test]
async fn keys_are_required_refused_keys_are_not_retried_and_never_shown() {
    let mock = MockLlm::start();
    mock.state().key = Some("sk-the-right-one-1234".into());
    for kind in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
        let p = provider(&mock, kind, |_| {});
        let before = mock.state().requests.len();
        let err = chat(&p, &request("hi", true)).await.0.expect_err("wrong key");
        assert!(matches!(err, ProviderError::Unauthorized { status: 401, .. }), "{err}");
        assert_eq!(mock.state().requests.len(), before + 1, "a refused key is not retried");
        assert!(!format!("{err} {err:?}").contains(KEY), "the key leaked: {err:?}");
    }
    // A 400 is the caller's mistake: not retried, the server's message passed on.
    mock.state().key = None;
    mock.state().script.push_back(Fault::BadRequest);
    let p = provider(&mock, ProviderKind::OpenAi, |_| {});
    let err = chat(&p, &request("hi", false)).await.0.expect_err("400");
    assert!(matches!(err, ProviderError::Rejected { status: 400, .. }) && err.to_string().contains("temperature"));

    // No key at all: refused before any request, naming where to put one; local servers need none.
    let config = ProviderConfig::new("my-llm", ProviderKind::OpenAi, &mock.openai_base());
    let err = Provider::new(config.clone(), None, PriceTable::default()).expect_err("no key");
    assert!(err.to_string().contains("MY_LLM_API_KEY") && err.to_string().contains("benchtop keys set my-llm"));
    let local =
        Provider::new(ProviderConfig { no_key: true, ..config }, None, PriceTable::default()).expect("no key needed");
    let r = chat(&local, &request("hi", true)).await.0.expect("answers");
    assert_eq!(r.cost_usd, None, "an empty price table prices nothing");
    assert!(format!("{:?}", provider(&mock, ProviderKind::OpenAi, |_| {})).contains("<set>"));
}

#[tokio::test]
async fn concurrency_is_limited_per_provider_and_unreachable_servers_are_named() {
    let mock = MockLlm::start();
    mock.state().latency = Duration::from_millis(100);
    let p = provider(&mock, ProviderKind::OpenAi, |c| c.max_concurrency = 3);
    let done = Arc::new(Mutex::new(0));
    let calls: Vec<_> = (0..9)
        .map(|i| {
            let (p, done) = (p.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let r = p.chat(&request(&format!("q{i}"), i % 2 == 0), &mut |_| {}).await.expect("answers");
                assert_eq!(r.text, format!("[gpt-4o-mini] q{i}"));
                *done.lock().expect("lock") += 1;
            })
        })
        .collect();
    for call in calls {
        call.await.expect("task");
    }
    assert_eq!(*done.lock().expect("lock"), 9);
    assert_eq!(mock.state().max_in_flight, 3);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1", closed.local_addr().expect("addr"));
    drop(closed);
    let mut config = ProviderConfig::new("down", ProviderKind::OpenAi, &url);
    config.max_attempts = 2;
    let p = Provider::new(config, ApiKey::new(KEY), PriceTable::default()).expect("provider").with_retry(RetryPolicy {
        max_attempts: 2,
        base: Duration::from_millis(10),
        ..RetryPolicy::default()
    });
    let err = chat(&p, &request("hi", false)).await.0.expect_err("nothing listens");
    assert!(matches!(err, ProviderError::Connect { attempts: 2, .. }) && err.to_string().contains(&url), "{err}");
    let bad = ProviderConfig::new("x", ProviderKind::OpenAi, "ftp://nope");
    assert!(Provider::new(bad, ApiKey::new(KEY), PriceTable::default()).is_err());
}
