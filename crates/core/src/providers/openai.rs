//! The OpenAI chat completions wire format (`POST {base}/chat/completions`), which OpenAI, Ollama,
//! vLLM, LM Studio, llama.cpp's server, OpenRouter, Groq and Together all speak.

use serde_json::{json, Value};

use super::{ChatRequest, Role, StreamEvent, TokenUsage, WireError};

pub fn path() -> &'static str {
    "chat/completions"
}

pub fn body(request: &ChatRequest) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for m in &request.messages {
        let role = match m.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        messages.push(json!({"role": role, "content": m.content}));
    }
    let mut body = json!({"model": request.model, "messages": messages, "stream": request.stream});
    if request.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(p) = request.top_p {
        body["top_p"] = json!(p);
    }
    if let Some(n) = request.max_tokens {
        body["max_tokens"] = json!(n);
    }
    if !request.stop.is_empty() {
        body["stop"] = json!(request.stop);
    }
    if let Some(seed) = request.seed {
        body["seed"] = json!(seed);
    }
    body
}

fn usage(value: &Value) -> Option<TokenUsage> {
    let u = value.get("usage").filter(|u| u.is_object())?;
    Some(TokenUsage {
        input: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        output: u.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0),
    })
}

/// A whole (non-streamed) response: text, finish reason, usage.
pub fn parse(value: &Value) -> Result<(String, Option<String>, Option<TokenUsage>), WireError> {
    let choice =
        value.get("choices").and_then(|c| c.get(0)).ok_or_else(|| WireError("the response has no `choices`".into()))?;
    let text = match choice.pointer("/message/content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => return Err(WireError(format!("`message.content` is not text: {other}"))),
    };
    let finish = choice.get("finish_reason").and_then(Value::as_str).map(str::to_string);
    Ok((text, finish, usage(value)))
}

/// One `data:` payload of a stream.
pub fn event(data: &str) -> Result<StreamEvent, WireError> {
    if data.trim() == "[DONE]" {
        return Ok(StreamEvent::Done);
    }
    let value: Value =
        serde_json::from_str(data).map_err(|e| WireError(format!("a stream event is not valid JSON ({e})")))?;
    if let Some(error) = value.get("error") {
        return Err(WireError(format!("the stream carried an error: {}", super::error_message(error))));
    }
    let choice = value.get("choices").and_then(|c| c.get(0));
    let text = choice.and_then(|c| c.pointer("/delta/content")).and_then(Value::as_str).unwrap_or("").to_string();
    let finish = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str).map(str::to_string);
    Ok(StreamEvent::Delta { text, finish, usage: usage(&value) })
}
