//! The accept loop under the router: a cap on open connections, a smaller cap per client address, one deadline
//! from accept to the first complete request head (protocol detection and TLS handshake included), an idle timeout
//! for connections with no request in flight (HTTP/1 keep-alive and HTTP/2 alike, PINGs do not count), a `400` for
//! plain HTTP sent to the TLS port, and a graceful stop.
//!
//! `axum::serve` has none of these knobs, and a client holding sockets open must not keep anyone else out, so
//! connections are served with hyper directly.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::tls::ReloadingTls;

/// Limits on connections; [`Limits::default`] suits production.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most connections open at once. Past it the server stops accepting until one closes, so the kernel's
    /// backlog, not our file table, absorbs a flood. Keep it below the process's open-file limit (`LimitNOFILE`).
    pub max_connections: usize,
    /// The most connections open at once from one client address (IPv4 address or IPv6 address). Further ones are
    /// closed at once, so one address can never fill [`Limits::max_connections`] and lock another out.
    pub max_connections_per_address: usize,
    /// The time a client has from accepting its connection to a complete request head (protocol detection and TLS
    /// handshake included), and the time a connection may stay open with no request in flight (an idle HTTP/1
    /// keep-alive connection, an HTTP/2 connection with no open stream) before it is closed.
    pub header_read_timeout: Duration,
    /// How long a stop waits for requests in flight before closing their connections.
    pub shutdown_grace: Duration,
}

/// The default of [`Limits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// The default of [`Limits::max_connections_per_address`]: an eighth of the global cap, room for a Prometheus pair,
/// a few dashboards and browsers behind one proxy address.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 64;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What Go's HTTPS server answers to plain HTTP on its port; clients and people recognise it.
const HTTP_TO_HTTPS: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Serves `app` on `listener` (through TLS when `tls` is set) until `shutdown` is cancelled, then lets requests in
/// flight finish for at most [`Limits::shutdown_grace`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<ReloadingTls>>,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // One future for the stop, awaited in both selects below.
    let stopped = shutdown.cancelled_owned();
    tokio::pin!(stopped);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let addresses = Arc::new(Mutex::new(HashMap::new()));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    // An accept error such as EMFILE repeats until a descriptor frees up: log it once per burst, not per loop.
    let mut accept_failing = false;
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut stopped => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    accept_failing = false;
                    a
                }
                Err(e) => {
                    if !accept_failing {
                        tracing::warn!(error = %e, "cannot accept connections; retrying");
                        accept_failing = true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        let Some(slot) =
            AddressSlot::take(&addresses, peer.ip(), limits.max_connections_per_address)
        else {
            tracing::debug!(%peer, "too many connections from this address; closing the new one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            builder: builder.clone(),
            peer,
            timeout: limits.header_read_timeout,
            watcher: graceful.watcher(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _slot = slot;
            connection.run(stream, tls).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("requests still in flight after the shutdown grace period; closing them");
    }
    Ok(())
}

/// One client address's share of [`Limits::max_connections_per_address`], given back when the connection ends.
struct AddressSlot {
    addresses: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl AddressSlot {
    /// A slot for `ip`, or `None` when it already holds `cap` connections.
    fn take(
        addresses: &Arc<Mutex<HashMap<IpAddr, usize>>>,
        ip: IpAddr,
        cap: usize,
    ) -> Option<AddressSlot> {
        let mut map = addresses.lock().unwrap_or_else(|p| p.into_inner());
        let held = map.entry(ip).or_insert(0);
        if *held >= cap.max(1) {
            return None;
        }
        *held += 1;
        Some(AddressSlot {
            addresses: addresses.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = map.get_mut(&self.ip) {
            *held -= 1;
            if *held == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What one accepted connection needs.
struct Connection {
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    peer: SocketAddr,
    timeout: Duration,
    watcher: Watcher,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<Arc<ReloadingTls>>) {
        let activity = Activity::new();
        let Some(tls) = tls else {
            return self.serve(stream, activity).await;
        };
        let deadline = Instant::now() + self.timeout;
        // Look at the first byte before the handshake: a TLS connection starts with a handshake record (22); a
        // letter is plain HTTP, which gets Go's answer instead of TLS alert bytes.
        let mut first = [0u8; 1];
        match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(1..)) => {}
            _ => return,
        }
        if first[0] != 22 {
            if first[0].is_ascii_alphabetic() {
                tokio::time::timeout_at(deadline, answer_plain_http(stream))
                    .await
                    .ok();
            }
            return;
        }
        match tokio::time::timeout_at(deadline, tls.accept(stream)).await {
            Ok(Ok(stream)) => self.serve(stream, activity).await,
            Ok(Err(e)) => tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        }
    }

    /// Serves HTTP/1 or HTTP/2 on `io` until the client closes, the connection stays idle for the timeout (counted
    /// from accept for the first request), or the server stops.
    async fn serve<I>(self, io: I, activity: Arc<Activity>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            app,
            builder,
            peer,
            timeout,
            watcher,
        } = self;
        let tracked = activity.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let in_flight = tracked.begin();
            let app = app.clone();
            async move {
                let response = app
                    .oneshot(request.map(Body::new))
                    .await
                    .unwrap_or_else(|e: Infallible| match e {});
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(Tracked {
                        inner: body,
                        _in_flight: in_flight,
                    })
                }))
            }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let conn = watcher.watch(conn.into_owned());
        tokio::select! {
            result = conn => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            () = activity.idle_for(timeout) => {
                tracing::debug!(%peer, "closing a connection idle for {timeout:?}");
            }
        }
    }
}

/// Writes Go's `400` for plain HTTP on the TLS port, then closes the sending side and reads what the client sent
/// (at most 64 KiB) so that closing does not turn into a reset that would discard the answer.
async fn answer_plain_http(mut stream: TcpStream) {
    if stream.write_all(HTTP_TO_HTTPS).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut read = 0;
    while read < 64 * 1024 {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
}

/// Requests in flight on one connection and when the last one ended, for the idle timeout. Only requests count:
/// HTTP/2 PINGs and SETTINGS never reach the service, so they do not keep a connection open.
struct Activity {
    /// (requests in flight, when the count last fell to zero or the connection was accepted). A std mutex: held for
    /// a few instructions, never across an await.
    state: Mutex<(usize, Instant)>,
    /// Wakes [`Activity::idle_for`] when a request begins or ends.
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new((0, Instant::now())),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, Instant)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a request in flight until the returned guard (carried by its response body) is dropped.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.lock().0 += 1;
        self.changed.notify_waiters();
        InFlight(self.clone())
    }

    /// Returns once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            let (in_flight, since) = *self.lock();
            if in_flight == 0 {
                let until = since + timeout;
                if Instant::now() >= until {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {}
                    () = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

/// One request in flight; see [`Activity::begin`].
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut state = self.0.lock();
            state.0 = state.0.saturating_sub(1);
            state.1 = Instant::now();
        }
        self.0.changed.notify_waiters();
    }
}

/// A response body that keeps its request counted as in flight until it has been sent (or dropped), so a large
/// answer read slowly is not cut by the idle timeout.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
