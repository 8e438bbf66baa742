//! The Anthropic Messages API (`POST {base}/v1/messages`).

use serde_json::{json, Value};

use super::{ChatRequest, Role, StreamEvent, TokenUsage, WireError};

pub const VERSION: &str = "2023-06-01";

/// `max_tokens` is required by the API; this is used when the caller gives none.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

pub fn path() -> &'static str {
    "v1/messages"
}

pub fn body(request: &ChatRequest) -> Value {
    // System messages go to the top-level `system`; the API takes only user/assistant turns.
    let mut system: Vec<&str> = request.system.iter().map(String::as_str).collect();
    let mut messages = Vec::new();
    for m in &request.messages {
        match m.role {
            Role::System => system.push(&m.content),
            Role::User => messages.push(json!({"role": "user", "content": m.content})),
            Role::Assistant => messages.push(json!({"role": "assistant", "content": m.content})),
        }
    }
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "stream": request.stream,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(p) = request.top_p {
        body["top_p"] = json!(p);
    }
    if !request.stop.is_empty() {
        body["stop_sequences"] = json!(request.stop);
    }
    body
}

/// A whole (non-streamed) response: text, stop reason, usage.
pub fn parse(value: &Value) -> Result<(String, Option<String>, Option<TokenUsage>), WireError> {
    let content = value
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| WireError("the response has no `content`".into()))?;
    let text: String = content
        .iter()
        .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|block| block.get("text").and_then(Value::as_str))
        .collect();
    let finish = value.get("stop_reason").and_then(Value::as_str).map(str::to_string);
    let usage = value.get("usage").map(|u| TokenUsage {
        input: u.get("input_tokens").and_then(Value::as_u64).unwrap_or(0),
        output: u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0),
    });
    Ok((text, finish, usage))
}

/// One server-sent event: its `event:` name and `data:` payload.
pub fn event(name: &str, data: &str) -> Result<StreamEvent, WireError> {
    if name == "ping" {
        return Ok(StreamEvent::Delta { text: String::new(), finish: None, usage: None });
    }
    let value: Value =
        serde_json::from_str(data).map_err(|e| WireError(format!("a stream event is not valid JSON ({e})")))?;
    let kind = value.get("type").and_then(Value::as_str).unwrap_or(name);
    let empty = || StreamEvent::Delta { text: String::new(), finish: None, usage: None };
    Ok(match kind {
        "message_start" => {
            let input = value.pointer("/message/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0);
            StreamEvent::Delta { text: String::new(), finish: None, usage: Some(TokenUsage { input, output: 0 }) }
        }
        "content_block_delta" => match value.pointer("/delta/text").and_then(Value::as_str) {
            Some(text) => StreamEvent::Delta { text: text.to_string(), finish: None, usage: None },
            None => empty(),
        },
        "message_delta" => StreamEvent::Delta {
            text: String::new(),
            finish: value.pointer("/delta/stop_reason").and_then(Value::as_str).map(str::to_string),
            // Output tokens only; input tokens came with message_start and are kept.
            usage: value
                .pointer("/usage/output_tokens")
                .and_then(Value::as_u64)
                .map(|output| TokenUsage { input: 0, output }),
        },
        "message_stop" => StreamEvent::Done,
        "error" => {
            let error = value.get("error").cloned().unwrap_or(Value::Null);
            return Err(WireError(format!("the stream carried an error: {}", super::error_message(&error))));
        }
        _ => empty(),
    })
}
