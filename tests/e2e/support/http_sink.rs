//! A local stand-in for Slack, Teams, PagerDuty and webhook endpoints: an HTTP server on 127.0.0.1 that records
//! every request (path, headers, JSON body) and answers with a status the test sets. Stopped when dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::sync::watch;

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Request {
    /// The path and query, as sent.
    pub path: String,
    pub headers: HeaderMap,
    /// The body parsed as JSON (`Null` when it is not JSON; `raw` keeps it).
    pub json: serde_json::Value,
    pub raw: String,
}

struct Shared {
    requests: Mutex<Vec<Request>>,
    status: AtomicU16,
}

/// A recording HTTP server; dropped, it stops.
pub struct HttpSink {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: watch::Sender<bool>,
}

impl HttpSink {
    /// Serves on `port` of 127.0.0.1 (0 picks a free one), answering `status` to every request.
    pub async fn start(port: u16, status: u16) -> HttpSink {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("bind the sink on port {port}: {e}"));
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            status: AtomicU16::new(status),
        });
        let s = shared.clone();
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let raw = String::from_utf8_lossy(&body).into_owned();
                let json = serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null);
                s.requests.lock().unwrap().push(Request {
                    path: uri
                        .path_and_query()
                        .map_or(uri.path().to_string(), |p| p.to_string()),
                    headers,
                    json,
                    raw,
                });
                let code = StatusCode::from_u16(s.status.load(Ordering::SeqCst)).unwrap();
                (
                    code,
                    if code.is_success() {
                        "ok"
                    } else {
                        "no_service"
                    },
                )
            }
        });
        let (tx, mut rx) = watch::channel(false);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
        });
        HttpSink {
            addr,
            shared,
            _stop: tx,
        }
    }

    /// A URL on the sink.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    /// Answers `status` from now on.
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// One line per request (path and the start of the body), for failure messages.
    pub fn summary(&self) -> String {
        let reqs = self.requests();
        if reqs.is_empty() {
            return "(no request)".to_string();
        }
        reqs.iter()
            .map(|r| format!("{} {}", r.path, r.raw.chars().take(200).collect::<String>()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
