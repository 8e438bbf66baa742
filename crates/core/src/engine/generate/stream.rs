//! Turning generated token ids into text as they arrive.
//!
//! - [`TextStream`] decodes incrementally. Byte-level BPE pieces (GPT-2, Llama 3, Qwen) and
//!   byte-fallback pieces (Llama 2, Phi-3) can each hold part of a UTF-8 character, so a token's
//!   text is only released once it decodes without a trailing replacement character. Decoding
//!   re-reads a short window of recent ids (not the whole output), so the cost per token stays flat.
//! - [`StopText`] finds stop sequences in the text, even when one spans several tokens, and holds
//!   back text that might be the start of one, so nothing after a stop sequence is ever streamed.

use tokenizers::Tokenizer;

/// A UTF-8 character is at most 4 bytes, so at most 4 byte-tokens: an incomplete tail of this
/// many tokens holds invalid bytes, which are released as U+FFFD.
const MAX_PENDING_TOKENS: usize = 4;

pub struct TextStream<'t> {
    tokenizer: &'t Tokenizer,
    ids: Vec<u32>,
    /// Where the decoding window starts (a little context before the unreleased ids, so that
    /// decoders which treat the first token specially — a leading space — decode it in place).
    prefix: usize,
    /// Ids before this have been released as text.
    read: usize,
}

impl<'t> TextStream<'t> {
    pub fn new(tokenizer: &'t Tokenizer) -> TextStream<'t> {
        TextStream { tokenizer, ids: Vec::new(), prefix: 0, read: 0 }
    }

    /// Add one token; returns the text it completes, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>, String> {
        self.ids.push(id);
        self.release(false)
    }

    /// The text still held back at the end of generation (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> Result<Option<String>, String> {
        self.release(true)
    }

    fn release(&mut self, at_end: bool) -> Result<Option<String>, String> {
        let decode = |ids: &[u32]| self.tokenizer.decode(ids, true).map_err(|e| e.to_string());
        let pending = self.ids.len() - self.read;
        if pending == 0 {
            return Ok(None);
        }
        let before = decode(&self.ids[self.prefix..self.read])?;
        let mut upto = self.ids.len();
        let mut now = decode(&self.ids[self.prefix..upto])?;
        if now.ends_with(char::REPLACEMENT_CHARACTER) && !at_end {
            if pending < MAX_PENDING_TOKENS {
                return Ok(None);
            }
            // Too long to be one unfinished character: what came before the last three tokens is
            // invalid and released as U+FFFD; those three may still begin a valid character.
            upto = self.ids.len() - (MAX_PENDING_TOKENS - 1);
            now = decode(&self.ids[self.prefix..upto])?;
        }
        let delta = match now.strip_prefix(before.as_str()) {
            Some(rest) => rest.to_string(),
            // A decoder that rewrote the earlier text once more context arrived: release the
            // part after the longest common prefix.
            None => now[common_prefix(&before, &now)..].to_string(),
        };
        self.prefix = self.read;
        self.read = upto;
        Ok((!delta.is_empty()).then_some(delta))
    }
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .take_while(|((_, x), y)| x == y)
        .last()
        .map(|((i, c), _)| i + c.len_utf8())
        .unwrap_or(0)
}

/// Stop sequences over the streamed text.
#[derive(Debug, Default)]
pub struct StopText {
    stops: Vec<String>,
    longest: usize,
    text: String,
    emitted: usize,
}

impl StopText {
    pub fn new(stops: &[String]) -> StopText {
        let stops: Vec<String> = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        let longest = stops.iter().map(String::len).max().unwrap_or(0);
        StopText { stops, longest, text: String::new(), emitted: 0 }
    }

    /// Add decoded text. Returns the text that is safe to show now and whether a stop sequence
    /// was found (the text is then cut where it begins, and generation should end).
    pub fn push(&mut self, delta: &str) -> (&str, bool) {
        let search_from =
            floor_char_boundary(&self.text, self.text.len().saturating_sub(self.longest.saturating_sub(1)));
        self.text.push_str(delta);
        let window = &self.text[search_from..];
        let found = self.stops.iter().filter_map(|s| window.find(s.as_str())).min();
        let start = self.emitted;
        if let Some(at) = found {
            self.text.truncate(search_from + at);
            self.emitted = self.text.len().max(start);
            return (&self.text[start.min(self.text.len())..], true);
        }
        let safe = self.text.len() - self.held_back();
        self.emitted = safe.max(start);
        (&self.text[start..self.emitted], false)
    }

    /// Generation ended without a stop sequence: release what was held back.
    pub fn finish(&mut self) -> &str {
        let start = self.emitted;
        self.emitted = self.text.len();
        &self.text[start..]
    }

    /// The full text so far (without any stop sequence).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Bytes at the end of the text that could be the start of a stop sequence.
    fn held_back(&self) -> usize {
        let text = &self.text;
        let mut longest = 0;
        for (i, _) in text.char_indices().rev().take_while(|(i, _)| text.len() - i < self.longest) {
            let suffix = &text[i..];
            if self.stops.iter().any(|s| s.starts_with(suffix)) {
                longest = suffix.len();
            }
        }
        longest
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stops: &[&str], pieces: &[&str]) -> (String, String, bool) {
        let mut s = StopText::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let mut shown = String::new();
        for piece in pieces {
            let (out, stopped) = s.push(piece);
            shown.push_str(out);
            if stopped {
                return (shown, s.text().to_string(), true);
            }
        }
        shown.push_str(s.finish());
        (shown, s.text().to_string(), false)
    }

    #[test]
    fn stop_sequence_split_across_pieces_is_never_shown() {
        let (shown, text, stopped) = feed(&["###"], &["Hello #", "#", "# world"]);
        assert_eq!((shown.as_str(), text.as_str(), stopped), ("Hello ", "Hello ", true));
    }

    #[test]
    fn a_false_start_is_released() {
        let (shown, text, stopped) = feed(&["###"], &["a #", "# b", " c"]);
        assert_eq!((shown.as_str(), text.as_str(), stopped), ("a ## b c", "a ## b c", false));
    }

    #[test]
    fn held_back_text_is_released_at_the_end() {
        let (shown, _, stopped) = feed(&["END"], &["the E", "N"]);
        assert_eq!((shown.as_str(), stopped), ("the EN", false));
    }

    #[test]
    fn earliest_of_several_stops_wins_and_multibyte_text_is_safe() {
        let (shown, _, stopped) = feed(&["🙂", "b"], &["é", "ab🙂"]);
        assert_eq!((shown.as_str(), stopped), ("éa", true));
    }

    #[test]
    fn no_stops_passes_everything_through() {
        let (shown, _, stopped) = feed(&[], &["a", "", "b"]);
        assert_eq!((shown.as_str(), stopped), ("ab", false));
    }
}
