//! When to try a request again, and how long to wait first.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// Exponential backoff with jitter, bounded attempts; a server's `retry-after-ms` /
/// `retry-after` wins over the computed wait.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retries).
    pub max_attempts: u32,
    /// The wait before the first retry; doubled each time.
    pub base: Duration,
    /// No computed wait is longer than this.
    pub max_wait: Duration,
    /// A server asking for a longer wait than this is not waited for: the call fails at once.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(500),
            max_wait: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (`attempt` counts from 1): half the exponential
    /// step plus a random part of the other half ("equal jitter"), so clients that failed
    /// together do not retry together, yet each waits at least half the step.
    pub fn backoff(&self, attempt: u32, random: f64) -> Duration {
        let step = self.base.saturating_mul(1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX));
        let step = step.min(self.max_wait);
        step / 2 + step.mul_f64(random.clamp(0.0, 1.0) / 2.0)
    }
}

/// Whether a status is worth retrying: rate limits, timeouts and server errors.
pub fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::CONFLICT
        || status.is_server_error()
}

/// The wait a response asks for: `retry-after-ms` (OpenAI), else `retry-after` in seconds or as
/// an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_doubles_is_capped_and_jittered_within_bounds() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(250));
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(500));
        assert_eq!(p.backoff(3, 0.0), Duration::from_millis(1000));
        assert_eq!(p.backoff(40, 1.0), Duration::from_secs(20));
    }

    #[test]
    fn retry_after_reads_milliseconds_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert("retry-after", HeaderValue::from_str(&httpdate::fmt_http_date(later)).expect("header"));
        let wait = retry_after(&h).expect("a date");
        assert!(wait > Duration::from_secs(28) && wait <= Duration::from_secs(30), "{wait:?}");
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
