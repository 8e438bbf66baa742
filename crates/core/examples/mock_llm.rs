//! The mock LLM provider of the tests, as a program, for the UI's end-to-end tests and demos:
//! OpenAI (`/v1/chat/completions`) and Anthropic (`/v1/messages`) wire formats, streamed or not.
//! It answers `[MODEL] <last user message>` (or what follows `ANSWER:` in it).
//!
//! `mock_llm [CHUNK_DELAY_MS]` prints its base URL on the first line of stdout, then serves until
//! stdin closes or it is killed.

#[path = "../tests/common/mock_llm.rs"]
mod mock_llm;

use std::io::Read;
use std::time::Duration;

fn main() {
    let delay_ms: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(0);
    let mock = mock_llm::MockLlm::start();
    mock.state().chunk_delay = Duration::from_millis(delay_ms);
    println!("{}", mock.url);
    // Serve until whoever started us goes away.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}
