//! The one retry policy for every call out to the homeserver, and the error
//! a call ends with.
//!
//! Where it sits: every request the bridge sends to the homeserver, through
//! matrix-sdk (`client.rs`, `session.rs`, `e2ee/`) or as the bot with the
//! appservice token (`as_bot.rs`), runs inside [`RetryPolicy::run`], and
//! nowhere else retries. matrix-sdk's own retries are turned off on every
//! client it builds. When a call returns an error, the homeserver has had
//! its bounded chances: callers above (the room workers, the minutes) do not
//! retry the call again, and [`MatrixError::is_transient`] tells them whether
//! a later, separate try (the next start, the next command) may succeed.
//!
//! The policy:
//! - **Transient**, retried: transport failures (refused connection,
//!   timeout), `5xx`, and `429 M_LIMIT_EXCEEDED`. Everything else (a `4xx`
//!   refusal, an answer we cannot read, a local failure) is returned at once.
//! - **429**: the homeserver's wait (`retry_after_ms` in the body, or the
//!   `Retry-After` header) is honoured, up to a minute at a time.
//! - **Backoff** otherwise: 250 ms, doubling up to 8 s.
//! - **Bounded**: at most [`RetryPolicy::attempts`] attempts, each with its
//!   own request timeout, and no wait is started that would end past
//!   [`RetryPolicy::budget`] after the first attempt began. So a call gives up
//!   within the budget plus one request timeout, and says so loudly.

use std::future::{Future, IntoFuture};
use std::time::{Duration, Instant};

use matrix_sdk::HttpError;
use matrix_sdk::config::RequestConfig;
use ruma::api::error::{ErrorKind, RetryAfter};
use serde_json::Value;
use tracing::{debug, error, warn};

/// How a homeserver call failed, after retries.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// The homeserver refused: retrying will not help.
    #[error("the homeserver refused {op}: {errcode} {message}")]
    Refused {
        op: &'static str,
        status: u16,
        errcode: String,
        message: String,
    },
    /// The homeserver could not be reached, kept failing or rate-limited us;
    /// worth trying later (not before `retry_after`, when it said so).
    #[error("the homeserver is unreachable or failing ({op}): {reason}")]
    Unavailable {
        op: &'static str,
        reason: String,
        retry_after: Option<Duration>,
    },
    #[error("{op}: {reason}")]
    Other { op: &'static str, reason: String },
}

impl MatrixError {
    /// True when it is worth trying again later. The retry policy retries
    /// exactly these errors, within its bounds.
    pub fn is_transient(&self) -> bool {
        matches!(self, MatrixError::Unavailable { .. })
    }

    /// The Matrix errcode, if the homeserver gave one.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            MatrixError::Refused { errcode, .. } => Some(errcode),
            _ => None,
        }
    }

    /// How long the homeserver asked us to wait (429), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            MatrixError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn other(op: &'static str, reason: impl std::fmt::Display) -> Self {
        MatrixError::Other {
            op,
            reason: reason.to_string(),
        }
    }

    /// A failure of matrix-sdk's HTTP layer.
    pub(crate) fn from_http(op: &'static str, err: &HttpError) -> Self {
        if let Some(api) = err.as_client_api_error() {
            let kind = err.client_api_error_kind();
            let errcode = kind.map_or_else(|| "M_UNKNOWN".to_owned(), |k| k.errcode().to_string());
            let limited = match kind {
                Some(ErrorKind::LimitExceeded(data)) => Some(match data.retry_after {
                    Some(RetryAfter::Delay(d)) => Some(d),
                    Some(RetryAfter::DateTime(at)) => Some(
                        at.duration_since(std::time::SystemTime::now())
                            .unwrap_or_default(),
                    ),
                    None => None,
                }),
                _ => None,
            };
            if limited.is_some() || api.status_code.is_server_error() {
                return MatrixError::Unavailable {
                    op,
                    reason: format!("{} {errcode}", api.status_code),
                    retry_after: limited.flatten(),
                };
            }
            return MatrixError::Refused {
                op,
                status: api.status_code.as_u16(),
                errcode,
                message: api.to_string(),
            };
        }
        match err {
            HttpError::Reqwest(e) => MatrixError::Unavailable {
                op,
                reason: e.to_string(),
                retry_after: None,
            },
            other => MatrixError::other(op, other),
        }
    }

    /// A matrix-sdk failure: HTTP failures keep their meaning (refused or
    /// worth retrying); crypto and store failures are reported as they are.
    pub(crate) fn from_sdk(op: &'static str, err: &matrix_sdk::Error) -> Self {
        match err {
            matrix_sdk::Error::Http(http) => MatrixError::from_http(op, http),
            other => MatrixError::other(op, other),
        }
    }

    /// A request that got no answer (connection, timeout, a cut body).
    pub(crate) fn from_transport(op: &'static str, err: reqwest::Error) -> Self {
        MatrixError::Unavailable {
            op,
            reason: err.without_url().to_string(),
            retry_after: None,
        }
    }

    /// An answer that is not a success: its status, `Retry-After` header
    /// (seconds) and JSON body.
    pub(crate) fn from_status(
        op: &'static str,
        status: reqwest::StatusCode,
        retry_after_header: Option<Duration>,
        body: &Value,
    ) -> Self {
        let errcode = body["errcode"].as_str().unwrap_or("M_UNKNOWN").to_owned();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return MatrixError::Unavailable {
                op,
                reason: format!("{status} {errcode}"),
                retry_after: body["retry_after_ms"]
                    .as_u64()
                    .map(Duration::from_millis)
                    .or(retry_after_header),
            };
        }
        MatrixError::Refused {
            op,
            status: status.as_u16(),
            errcode,
            message: body["error"].as_str().unwrap_or("").to_owned(),
        }
    }
}

/// Bounds on retrying one homeserver call.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// The longest the homeserver's own wait (429) is honoured at a time.
    pub max_server_wait: Duration,
    /// No wait is started that would end later than this after the first
    /// attempt began.
    pub budget: Duration,
    /// Each attempt's own limit.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_server_wait: Duration::from_secs(60),
            budget: Duration::from_secs(90),
            request_timeout: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// matrix-sdk's configuration for one attempt: its own retries off.
    pub(crate) fn request_config(&self, force_auth: bool) -> RequestConfig {
        let config = RequestConfig::new()
            .disable_retry()
            .timeout(self.request_timeout);
        if force_auth {
            config.force_auth()
        } else {
            config
        }
    }

    /// Runs one homeserver call: `attempt` is called again while it fails
    /// with a transient error, within the policy's bounds.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        mut attempt: F,
    ) -> Result<T, MatrixError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, MatrixError>>,
    {
        let mut backoff = Backoff::new(*self);
        loop {
            let err = match attempt().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if !err.is_transient() {
                debug!(op, error = %err, "the homeserver refused; not retrying");
                return Err(err);
            }
            let Some(wait) = backoff.next(err.retry_after()) else {
                error!(op, attempts = backoff.attempt, error = %err, "giving up on the homeserver");
                return Err(err);
            };
            warn!(op, attempt = backoff.attempt - 1, error = %err, wait_ms = wait.as_millis() as u64, "homeserver call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// [`RetryPolicy::run`] for a matrix-sdk request: `call` sends it with
    /// the given configuration.
    pub(crate) async fn run_sdk<T, F, Fut>(
        &self,
        op: &'static str,
        force_auth: bool,
        mut call: F,
    ) -> Result<T, MatrixError>
    where
        F: FnMut(RequestConfig) -> Fut,
        Fut: IntoFuture<Output = Result<T, HttpError>>,
    {
        self.run(op, || {
            let sent = call(self.request_config(force_auth)).into_future();
            async move { sent.await.map_err(|e| MatrixError::from_http(op, &e)) }
        })
        .await
    }
}

/// The retry state of one homeserver call (or of the standing sync).
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
    delay: Duration,
    started: Instant,
}

impl Backoff {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            attempt: 1,
            delay: policy.first_delay,
            started: Instant::now(),
        }
    }

    /// How long to wait before the next attempt, or `None` once the
    /// attempts or the budget are spent. `server_wait` is the homeserver's
    /// `retry_after`; otherwise the delay doubles up to the cap.
    pub(crate) fn next(&mut self, server_wait: Option<Duration>) -> Option<Duration> {
        self.next_at(server_wait, self.started.elapsed())
    }

    fn next_at(&mut self, server_wait: Option<Duration>, elapsed: Duration) -> Option<Duration> {
        if self.attempt >= self.policy.attempts {
            return None;
        }
        let wait = self.wait(server_wait);
        if elapsed + wait > self.policy.budget {
            return None;
        }
        self.attempt += 1;
        Some(wait)
    }

    /// The next wait of a loop that never gives up (the E2EE sync): the
    /// same delays, without the bounds.
    pub(crate) fn next_unbounded(&mut self, server_wait: Option<Duration>) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        self.wait(server_wait)
    }

    fn wait(&mut self, server_wait: Option<Duration>) -> Duration {
        let wait = server_wait
            .map(|w| w.min(self.policy.max_server_wait))
            .unwrap_or(self.delay);
        self.delay = (self.delay * 2).min(self.policy.max_delay);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_bounded_and_honour_the_server_wait() {
        let mut backoff = Backoff::new(RetryPolicy::default());
        let mut waits = Vec::new();
        while let Some(wait) = backoff.next(None) {
            waits.push(wait);
        }
        assert_eq!(waits.len() as u32, RetryPolicy::default().attempts - 1);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
        let total: Duration = waits.iter().sum();
        // Backoff alone stays well under a minute, unlike matrix-sdk's 15.
        assert!(total < Duration::from_secs(30), "{total:?}");

        let mut backoff = Backoff::new(RetryPolicy::default());
        assert_eq!(
            backoff.next(Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            backoff.next(Some(Duration::from_secs(3600))),
            Some(Duration::from_secs(60)),
            "a huge retry_after is capped"
        );
    }

    #[test]
    fn no_wait_ends_past_the_budget() {
        let policy = RetryPolicy::default();
        let mut backoff = Backoff::new(policy);
        assert_eq!(
            backoff.next_at(Some(Duration::from_secs(40)), Duration::from_secs(10)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(
            backoff.next_at(Some(Duration::from_secs(41)), Duration::from_secs(50)),
            None,
            "a 429 that would end past the budget gives up at once"
        );
        let mut backoff = Backoff::new(policy);
        assert_eq!(backoff.next_at(None, policy.budget), None);
    }

    #[test]
    fn only_unavailable_answers_are_transient() {
        let status = |code: u16, body: Value| {
            MatrixError::from_status(
                "test",
                reqwest::StatusCode::from_u16(code).unwrap(),
                None,
                &body,
            )
        };
        let limited = status(
            429,
            serde_json::json!({"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500}),
        );
        assert!(limited.is_transient());
        assert_eq!(limited.retry_after(), Some(Duration::from_millis(1500)));
        assert!(status(502, Value::Null).is_transient());
        let forbidden = status(403, serde_json::json!({"errcode": "M_FORBIDDEN"}));
        assert!(!forbidden.is_transient());
        assert_eq!(forbidden.errcode(), Some("M_FORBIDDEN"));
        let header = MatrixError::from_status(
            "test",
            reqwest::StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(2)),
            &Value::Null,
        );
        assert_eq!(header.retry_after(), Some(Duration::from_secs(2)));
    }

    #[tokio::test]
    async fn run_retries_what_is_transient_and_nothing_else() {
        let policy = RetryPolicy {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let mut calls = 0;
        let refused: Result<(), _> = policy
            .run("test", || {
                calls += 1;
                async { Err(MatrixError::other("test", "refused")) }
            })
            .await;
        assert!(refused.is_err());
        assert_eq!(calls, 1, "a refusal is not retried");

        let mut calls = 0;
        let failing: Result<(), _> = policy
            .run("test", || {
                calls += 1;
                async {
                    Err(MatrixError::Unavailable {
                        op: "test",
                        reason: "502".into(),
                        retry_after: None,
                    })
                }
            })
            .await;
        assert!(failing.unwrap_err().is_transient());
        assert_eq!(calls, policy.attempts);

        let mut calls = 0;
        let recovered = policy
            .run("test", || {
                calls += 1;
                let result = if calls < 3 {
                    Err(MatrixError::from_status(
                        "test",
                        reqwest::StatusCode::SERVICE_UNAVAILABLE,
                        None,
                        &Value::Null,
                    ))
                } else {
                    Ok(calls)
                };
                async move { result }
            })
            .await;
        assert_eq!(recovered.unwrap(), 3);
    }
}
