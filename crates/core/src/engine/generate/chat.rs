//! Chat messages → one prompt string, through the model's own `chat_template`, rendered with
//! minijinja in the dialect Hugging Face transformers uses: `trim_blocks` and `lstrip_blocks`,
//! `{% break %}`/`{% continue %}`, Python string methods (`.strip()`, `.startswith()`…),
//! `raise_exception(msg)`, `strftime_now(fmt)`, `tojson` without HTML escaping, and the
//! variables `messages`, `add_generation_prompt`, `bos_token`, `eos_token`.

use minijinja::{Environment, Error as TemplateError, ErrorKind as TemplateErrorKind, Value};
use serde::{Deserialize, Serialize};

/// Who said something in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message { role, content: content.into() }
    }
}

/// Why a chat template could not be used; the text is the template's own error where it has one
/// (a `raise_exception` message, say), so the user sees what the model's authors wrote.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChatError(pub String);

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

const NAME: &str = "chat_template";

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compile `source`; a syntax error is reported now, not at the first chat.
    pub fn new(source: &str, bos_token: Option<&str>, eos_token: Option<&str>) -> Result<ChatTemplate, ChatError> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| ChatError(describe(&e)))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<Value, TemplateError> {
            Err(TemplateError::new(TemplateErrorKind::InvalidOperation, message))
        });
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| ChatError(format!("the chat template does not compile: {}", describe(&e))))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.unwrap_or_default().to_string(),
            eos_token: eos_token.unwrap_or_default().to_string(),
        })
    }

    /// The prompt for `messages`, ending with the assistant's turn opened when
    /// `add_generation_prompt` is set (as it is for generating a reply).
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, ChatError> {
        let template = self.env.get_template(NAME).map_err(|e| ChatError(describe(&e)))?;
        template
            .render(minijinja::context! {
                messages => Value::from(minijinja::value::Serde(messages)),
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
                tools => Value::from(()),
            })
            .map_err(|e| ChatError(format!("the chat template refused these messages: {}", describe(&e))))
    }
}

/// The error's own words, plus the template line when minijinja knows it.
fn describe(error: &TemplateError) -> String {
    let what = error.detail().map(str::to_string).unwrap_or_else(|| error.kind().to_string());
    match error.line() {
        Some(line) => format!("{what} (template line {line})"),
        None => what,
    }
}

/// JSON the way transformers' `tojson` writes it: no HTML escaping, optional indent.
fn tojson(value: Value, indent: Option<usize>) -> Result<Value, TemplateError> {
    let fail = |e: serde_json::Error| TemplateError::new(TemplateErrorKind::InvalidOperation, e.to_string());
    let text = match indent {
        None => serde_json::to_string(&value).map_err(fail)?,
        Some(width) => {
            let indent = " ".repeat(width);
            let mut out = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
            let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
            value.serialize(&mut serializer).map_err(fail)?;
            String::from_utf8(out).unwrap_or_default()
        }
    };
    Ok(Value::from_safe_string(text))
}

/// Today's date for templates that print it (Llama 3's does), in the `%d %b %Y`-style formats
/// templates use. Only the common directives are supported; others are left as written.
fn strftime_now(format: String) -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let (year, month, day) = civil_from_days(days);
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('b') => out.push_str(&name[..3]),
            Some('B') => out.push_str(name),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
    }

    #[test]
    fn raise_exception_message_reaches_the_user() {
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}", None, None).unwrap();
        let err = t.render(&[Message::new(Role::User, "hi")], true).unwrap_err();
        assert!(err.0.contains("roles must alternate"), "{err}");
    }

    #[test]
    fn syntax_errors_are_reported_at_load() {
        let err = ChatTemplate::new("{% for m in messages %}", None, None).unwrap_err();
        assert!(err.0.contains("does not compile"), "{err}");
    }

    #[test]
    fn python_methods_tojson_and_loop_controls() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{% if m.content.startswith('skip') %}{% continue %}{% endif %}\
             {{ m.content.strip().upper() }}|{% endfor %}{{ {'a': '<b>'} | tojson }}{{ bos_token }}",
            Some("<s>"),
            None,
        )
        .unwrap();
        let out = t
            .render(
                &[
                    Message::new(Role::User, "  hi "),
                    Message::new(Role::User, "skip me"),
                    Message::new(Role::Assistant, "yo"),
                ],
                false,
            )
            .unwrap();
        assert_eq!(out, "HI|YO|{\"a\":\"<b>\"}<s>");
    }
}
