//! What the four HTTP receivers (Slack, Teams, PagerDuty, webhook) share: one client, one JSON POST, and one
//! reading of the answer into "delivered", "try again" or "refused for good".
//!
//! Secrets travel in the URL (Slack and Teams webhooks), the body (the PagerDuty routing key) or a header (the
//! webhook's bearer token). None of them may reach a log line, a metric, the landing page or an error: the URL is
//! stripped from every client error, the bearer token is sent as a sensitive header, and the excerpt of a refusing
//! server's answer has every secret of the receiver replaced by `<redacted>` before it is kept.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

/// How long one POST may take, connect to last byte. Chat and paging APIs answer in well under a second; a receiver
/// that hangs must not hold up the outbox for long, since the outbox delivers one message at a time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes of a refusing server's answer kept for the log and the landing page.
pub const DETAIL_MAX_BYTES: usize = 300;

/// Why one POST failed. `Display` never shows the URL, the body or a credential.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No answer: DNS, connect, TLS or a timeout. The URL is stripped from the client's error.
    #[error("cannot reach the endpoint")]
    Send(#[source] reqwest::Error),
    /// The server answered with a status other than 2xx.
    #[error("the endpoint answered {status}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// The start of the answer's body, one line, secrets redacted; may be empty.
        detail: String,
    },
    /// The message could not be serialized (never expected).
    #[error("cannot encode the message: {0}")]
    Encode(#[source] serde_json::Error),
    /// The HTTP client could not be built (no TLS roots on this machine, for example).
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl HttpError {
    /// Returns true if and only if retrying cannot help: the server refused the request itself (a 3xx, since
    /// redirects are not followed, or a 4xx other than 408 Request Timeout and 429 Too Many Requests). A revoked
    /// Slack webhook answers 404 or 410 forever; retrying it for a week helps nobody.
    pub fn is_rejection(&self) -> bool {
        match self {
            HttpError::Status { status, .. } => {
                (status.is_redirection() || status.is_client_error())
                    && *status != StatusCode::REQUEST_TIMEOUT
                    && *status != StatusCode::TOO_MANY_REQUESTS
            }
            HttpError::Encode(_) => true,
            HttpError::Send(_) | HttpError::Client(_) => false,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    /// The step that failed, as `test-notify` names it: `connect` (DNS, TCP, TLS), `request` (sending, or no answer
    /// in time), `response` (the server answered with an error) or `encode`.
    pub fn step(&self) -> &'static str {
        match self {
            HttpError::Send(e) if e.is_connect() => "connect",
            HttpError::Send(_) => "request",
            HttpError::Status { .. } => "response",
            HttpError::Encode(_) => "encode",
            HttpError::Client(_) => "client",
        }
    }
}

/// Builds the client every receiver shares: rustls, a timeout per request, and no redirects (a redirect would
/// re-send a body that may hold a routing key to wherever the answer points).
pub fn client() -> Result<reqwest::Client, HttpError> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("onprem-agent-exporter/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HttpError::Client(e.without_url()))
}

/// The header every Slack, Teams, PagerDuty and webhook POST carries: the notification id, the same on every retry and
/// after a restart, so that a receiver can drop the copy an at-least-once delivery may send.
pub const ID_HEADER: &str = "X-Notification-Id";

/// POSTs `body` as JSON to `url`, with `Authorization: Bearer` when `bearer` is set and the [`ID_HEADER`]
/// `notification_id`. `Ok` if and only if the server answered 2xx. `secrets` are the receiver's secrets, replaced in any excerpt of the answer that is kept.
pub async fn post_json(
    client: &reqwest::Client,
    url: &SecretString,
    bearer: Option<&SecretString>,
    body: &serde_json::Value,
    notification_id: &str,
    secrets: &[&SecretString],
) -> Result<(), HttpError> {
    let bytes = serde_json::to_vec(body).map_err(HttpError::Encode)?;
    let mut request = client
        .post(url.expose_secret())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(ID_HEADER, notification_id)
        .body(bytes);
    if let Some(token) = bearer {
        // bearer_auth marks the header sensitive, so it never shows in the client's debug output.
        request = request.bearer_auth(token.expose_secret());
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| HttpError::Send(e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        // Read the (small) answer to its end so the connection can be reused; its content does not matter.
        while let Ok(Some(_)) = response.chunk().await {}
        return Ok(());
    }
    let mut raw = Vec::new();
    while raw.len() < DETAIL_MAX_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => raw.extend_from_slice(&chunk),
            _ => break,
        }
    }
    raw.truncate(DETAIL_MAX_BYTES);
    let mut secrets: Vec<&SecretString> = secrets.to_vec();
    secrets.push(url);
    if let Some(b) = bearer {
        secrets.push(b);
    }
    Err(HttpError::Status {
        status,
        detail: excerpt(&String::from_utf8_lossy(&raw), &secrets),
    })
}

/// One line of at most 200 characters from an answer's body: control characters become spaces, runs of spaces
/// collapse, and every secret (and the path of a secret URL, which is where its key sits) becomes `<redacted>`.
pub fn excerpt(body: &str, secrets: &[&SecretString]) -> String {
    let mut text = body.to_string();
    for s in secrets {
        let s = s.expose_secret();
        let mut needles = vec![s.to_string()];
        if let Ok(url) = url::Url::parse(s) {
            let path = url.path();
            if path.len() > 1 {
                needles.push(path.to_string());
            }
            if let Some(q) = url.query() {
                needles.push(q.to_string());
            }
        }
        for n in needles.iter().filter(|n| n.len() >= 4) {
            text = text.replace(n.as_str(), "<redacted>");
        }
    }
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut line = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 200 {
        line = line.chars().take(199).collect::<String>() + "…";
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_redirects_and_client_errors_other_than_408_and_429_are_rejections() {
        let cases = [
            (200, false),
            (301, true),
            (400, true),
            (403, true),
            (404, true),
            (408, false),
            (410, true),
            (429, false),
            (500, false),
            (503, false),
        ];
        for (code, rejected) in cases {
            let e = HttpError::Status {
                status: StatusCode::from_u16(code).unwrap(),
                detail: String::new(),
            };
            assert_eq!(e.is_rejection(), rejected, "status {code}");
        }
    }

    #[test]
    fn an_excerpt_is_one_short_line_without_the_secrets_or_the_url_path() {
        let url = SecretString::from("https://hooks.slack.com/services/T0/B0/abcdefSECRET");
        let key = SecretString::from("R0UTINGKEY0123456789");
        let body =
            "invalid_token\r\nfor /services/T0/B0/abcdefSECRET and key R0UTINGKEY0123456789 "
                .repeat(10);
        let line = excerpt(&body, &[&url, &key]);
        assert!(
            !line.contains("SECRET") && !line.contains("R0UTINGKEY"),
            "{line}"
        );
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        assert!(line.chars().count() <= 200, "{line}");
        assert!(line.starts_with("invalid_token for <redacted>"), "{line}");
    }
}
