//! The HTTP surface's protection: the web config file shared with Prometheus (TLS, basic auth, response headers),
//! the security headers every response carries, and a listener whose connections cannot pile up.
//!
//! [`config`] reads the file; [`tls`] builds (and rebuilds, on certificate rotation) the rustls configuration;
//! [`auth`] checks basic-auth credentials within a bounded bcrypt queue; [`guard`] holds the toolkit's rate limit
//! and the refusal of cross-site writes; [`listener`] accepts connections within limits and serves the router.

pub mod auth;
pub mod config;
pub mod guard;
pub mod listener;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

pub use config::WebConfig;

/// The Content-Security-Policy of every response: nothing loads from anywhere, the pages' own inline styles apply,
/// the browser's own request for `/favicon.ico` is allowed (and answered 404), no `data:` image can be injected, and
/// no page can be framed. The pages need nothing more.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Wraps `router` with, from the outside in: the response headers (the security defaults first, then the web
/// config's own headers, which win), the refusal of cross-site writes, the toolkit's `rate_limit`, and basic auth
/// (when the web config has users). `scheme` is the server's own (`http` or `https`), for the origin check.
pub fn protect(router: Router, web: &WebConfig, scheme: &'static str) -> Router {
    let mut headers: Vec<(HeaderName, HeaderValue)> = vec![
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
    ];
    for (name, value) in &web.headers {
        headers.retain(|(n, _)| n != name);
        headers.push((name.clone(), value.clone()));
    }
    let router = match auth::BasicAuth::new(&web.users) {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(auth, auth::require)),
        None => router,
    };
    let router = match web.rate_limit {
        Some(limit) => router.layer(axum::middleware::from_fn_with_state(
            Arc::new(guard::TokenBucket::new(limit)),
            guard::rate_limit,
        )),
        None => router,
    };
    let mut router = router.layer(axum::middleware::from_fn_with_state(
        scheme,
        guard::same_origin_writes,
    ));
    // Outermost, so that a 401, a 403 and a 429 carry them too; each name is set once, replacing a handler's own.
    for (name, value) in headers {
        router = router.layer(SetResponseHeaderLayer::overriding(name, value));
    }
    router
}

/// How the HTTP server is exposed: the web config with its TLS state, and the connection limits.
pub struct Web {
    config: WebConfig,
    tls: Option<Arc<tls::ReloadingTls>>,
    limits: listener::Limits,
    /// `--web.enable-admin-api`: whether the silence API takes `POST` and `DELETE`.
    admin_api: bool,
}

impl Web {
    /// Plain HTTP, no credentials, default limits: for the demo and tests on loopback.
    pub fn plain() -> Web {
        Web {
            config: WebConfig::default(),
            tls: None,
            limits: listener::Limits::default(),
            admin_api: false,
        }
    }

    /// Builds the TLS configuration (if any) now, so a bad certificate stops the start-up with the file named.
    pub fn new(config: WebConfig, limits: listener::Limits) -> Result<Web, tls::TlsError> {
        let tls = match &config.tls {
            Some(settings) => Some(Arc::new(tls::ReloadingTls::new(
                settings.clone(),
                config.http2,
            )?)),
            None => None,
        };
        Ok(Web {
            config,
            tls,
            limits,
            admin_api: false,
        })
    }

    /// Opens (or closes) the write API: `POST` and `DELETE` on `/api/v1/silences` (`--web.enable-admin-api`).
    pub fn with_admin_api(mut self, enabled: bool) -> Web {
        self.admin_api = enabled;
        self
    }

    /// Returns true if and only if the silence API takes `POST` and `DELETE`.
    pub fn admin_api(&self) -> bool {
        self.admin_api
    }

    /// `https` with TLS, `http` without.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Returns true if and only if every endpoint but `/healthz` asks for credentials.
    pub fn requires_auth(&self) -> bool {
        !self.config.users.0.is_empty()
    }

    /// Serves `router`, protected as the web config says, on `listener` until `shutdown` is cancelled.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        router: Router,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<()> {
        let app = protect(router, &self.config, self.scheme());
        listener::serve(listener, app, self.tls.clone(), self.limits, shutdown).await
    }
}
