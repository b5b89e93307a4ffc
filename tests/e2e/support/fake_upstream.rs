//! A scripted fake upstream for the source tests of every provider: it answers each request with the next reply of a
//! script the test states (the last reply repeats once the script runs out), or with a reply chosen by the request's
//! path, and records every request it saw and how many were in flight at once.

// Each test binary includes this file and uses a different part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

/// The RFC 3339 timestamp `secs` seconds before now, as the platforms write `lastHeartbeatAt` and `createdAt`.
pub fn ago(secs: i64) -> String {
    jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(secs))
        .expect("a time after the epoch")
        .to_string()
}

/// One scripted response.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn json(body: serde_json::Value) -> Reply {
        Reply::raw(200, body.to_string()).header("content-type", "application/json")
    }

    /// Any status with the body given verbatim.
    pub fn raw(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// Any status with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply::raw(status, Vec::new())
    }

    /// Adds a header; calling it twice with the same name sends the header twice.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Adds `Link: <target>; rel="next"`.
    pub fn next(self, target: impl std::fmt::Display) -> Reply {
        self.header("link", format!(r#"<{target}>; rel="next""#))
    }

    /// Waits this long before answering.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A request the fake received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Path and query, as sent (`/v1/agents?include=...`).
    pub target: String,
    pub authorization: Option<String>,
    /// `X-Project-Token` (Calyptia).
    pub project_token: Option<String>,
    pub user_agent: Option<String>,
}

/// How the fake picks a reply.
enum Script {
    /// The n-th request gets the n-th reply; the last one repeats.
    Sequence(Vec<Reply>),
    /// The reply depends on the path and query only, whatever the order requests arrive in.
    ByTarget(Box<dyn Fn(&str) -> Reply + Send + Sync>),
}

struct Shared {
    script: Script,
    seen: Mutex<Vec<Seen>>,
    /// Requests being answered right now.
    in_flight: AtomicUsize,
    /// The most requests ever answered at once.
    max_in_flight: AtomicUsize,
}

/// A running fake upstream on 127.0.0.1 and an ephemeral port. It stops with the test's runtime.
pub struct FakeUpstream {
    /// `http://127.0.0.1:<port>/`.
    pub base: Url,
    shared: Arc<Shared>,
}

impl FakeUpstream {
    /// Starts a fake that serves `script(base)`; the closure gets the base URL so that replies can carry absolute
    /// links to the fake itself.
    pub async fn start(script: impl FnOnce(&Url) -> Vec<Reply>) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let script = script(&base);
        assert!(
            !script.is_empty(),
            "a fake upstream needs at least one reply"
        );
        FakeUpstream::serve(listener, base, Script::Sequence(script))
    }

    /// Starts a fake that answers each request with `reply(path_and_query)`, so that concurrent requests get the
    /// reply meant for them whatever order they arrive in.
    pub async fn route(reply: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        FakeUpstream::serve(listener, base, Script::ByTarget(Box::new(reply)))
    }

    fn serve(listener: TcpListener, base: Url, script: Script) -> FakeUpstream {
        let shared = Arc::new(Shared {
            script,
            seen: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeUpstream { base, shared }
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// The path and query of every request seen so far, in order.
    pub fn targets(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.target).collect()
    }
}

/// What the fake records of a request. A plain function, so that no borrow of the request (whose body is not
/// `Sync`) lives across the handler's await.
fn record(request: &Request) -> Seen {
    let text = |name: HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Seen {
        target: request
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        authorization: text(header::AUTHORIZATION),
        project_token: text(HeaderName::from_static("x-project-token")),
        user_agent: text(header::USER_AGENT),
    }
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let seen = record(&request);
    drop(request);
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let reply = match &shared.script {
        Script::Sequence(script) => {
            let mut all = shared.seen.lock().unwrap();
            all.push(seen);
            let index = (all.len() - 1).min(script.len() - 1);
            script[index].clone()
        }
        Script::ByTarget(reply) => {
            let target = seen.target.clone();
            shared.seen.lock().unwrap().push(seen);
            reply(&target)
        }
    };
    tokio::time::sleep(reply.delay).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).expect("a valid status");
    for (name, value) in reply.headers {
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("a valid header name"),
            HeaderValue::from_str(&value).expect("a valid header value"),
        );
    }
    response
}

/// Starts a bare TCP server that answers every connection with `response` verbatim, for what axum will not send
/// (a chunked body of a chosen size). Returns its base URL.
pub async fn serve_raw(response: Vec<u8>) -> Url {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    base
}
