//! Two request guards in front of the router: the exporter-toolkit's `rate_limit` (one token bucket for all
//! requests) and the refusal of cross-site writes to the silence API.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{OPEN_PATH, too_many_requests};
use super::config::RateLimit;

/// Go's `rate.Limiter` as the toolkit builds it: `burst` tokens at start and at most, one more every `interval`,
/// one taken per request. Hand-written: it is a dozen lines, and the crates that offer one (`governor`) bring a
/// clock and a hasher the exporter has no other use for.
pub struct TokenBucket {
    limit: RateLimit,
    /// (tokens, when they were counted). A std mutex: held for a few instructions.
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> TokenBucket {
        TokenBucket {
            limit,
            state: Mutex::new((f64::from(limit.burst), Instant::now())),
        }
    }

    /// Takes a token at `now`; returns true if and only if there was one.
    pub fn allow(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let refill = now.saturating_duration_since(state.1).as_secs_f64()
            / self.limit.interval.as_secs_f64();
        state.0 = (state.0 + refill).min(f64::from(self.limit.burst));
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Middleware: `429` when the bucket is empty, as the toolkit answers, before credentials are looked at. `/healthz`
/// is exempt, so a liveness probe never fails because of the limit (the toolkit has no such endpoint).
pub async fn rate_limit(
    State(bucket): State<Arc<TokenBucket>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() != OPEN_PATH && !bucket.allow(Instant::now()) {
        return too_many_requests();
    }
    next.run(request).await
}

/// Returns true if and only if a write with these headers comes from another site: `Sec-Fetch-Site: cross-site`,
/// or an `Origin` that is not `scheme://host` of the request itself (`null` included). A request with neither
/// header (curl, amtool, Prometheus) is not cross-site.
pub fn is_cross_site(headers: &HeaderMap, authority: Option<&str>, scheme: &str) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Some(host) = authority else {
        return true;
    };
    let own = format!("{scheme}://{host}");
    !origin.as_bytes().eq_ignore_ascii_case(own.as_bytes())
}

/// Middleware: `403` for a `POST`, `PUT`, `PATCH` or `DELETE` that [`is_cross_site`], so that a page on another
/// site cannot create or expire silences through a visitor's browser (the JSON content type alone stops simple
/// forms, not every browser request).
pub async fn same_origin_writes(
    State(scheme): State<&'static str>,
    request: Request,
    next: Next,
) -> Response {
    let writes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if writes {
        let authority = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()));
        if is_cross_site(request.headers(), authority, scheme) {
            return (
                StatusCode::FORBIDDEN,
                "cross-site writes are refused: the Origin is not this server's, or Sec-Fetch-Site is cross-site\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_bucket_gives_its_burst_then_one_token_per_interval() {
        let bucket = TokenBucket::new(RateLimit {
            interval: Duration::from_secs(1),
            burst: 2,
        });
        let t0 = Instant::now();
        assert!(bucket.allow(t0) && bucket.allow(t0));
        assert!(!bucket.allow(t0), "the burst is spent");
        assert!(!bucket.allow(t0 + Duration::from_millis(500)));
        assert!(bucket.allow(t0 + Duration::from_millis(1100)));
        assert!(!bucket.allow(t0 + Duration::from_millis(1200)));
    }

    #[test]
    fn a_burst_of_zero_refuses_everything_as_in_go() {
        let bucket = TokenBucket::new(RateLimit {
            interval: Duration::from_secs(1),
            burst: 0,
        });
        let t0 = Instant::now();
        assert!(!bucket.allow(t0) && !bucket.allow(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn only_foreign_origins_and_cross_site_fetches_are_cross_site() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let host = Some("exporter:9464");
        assert!(!is_cross_site(&with(&[]), host, "http"), "curl and amtool");
        assert!(!is_cross_site(
            &with(&[("origin", "http://exporter:9464")]),
            host,
            "http"
        ));
        assert!(!is_cross_site(
            &with(&[("sec-fetch-site", "same-origin")]),
            host,
            "http"
        ));
        assert!(is_cross_site(
            &with(&[("origin", "https://evil.example")]),
            host,
            "http"
        ));
        assert!(is_cross_site(&with(&[("origin", "null")]), host, "http"));
        assert!(is_cross_site(
            &with(&[("origin", "http://exporter:9464")]),
            host,
            "https"
        ));
        assert!(is_cross_site(
            &with(&[("sec-fetch-site", "cross-site")]),
            host,
            "http"
        ));
    }
}
