//! The accept loop under the router: a cap on open connections, a deadline for the TLS handshake and for request
//! headers (which also closes idle keep-alive connections), and a graceful stop.
//!
//! `axum::serve` has none of these knobs, and a slow client holding sockets open must not exhaust file handles, so
//! connections are served with hyper directly.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::tls::ReloadingTls;

/// Limits on connections; [`Limits::default`] suits production.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most connections open at once. Past it the server stops accepting until one closes, so the kernel's
    /// backlog, not our file table, absorbs a flood. Keep it below the process's open-file limit (`LimitNOFILE`).
    pub max_connections: usize,
    /// The time a client has to send a request's headers, counted from when the connection is ready for the next
    /// request. It also closes keep-alive connections that stay idle that long, and bounds the TLS handshake.
    pub header_read_timeout: Duration,
    /// How long a stop waits for requests in flight before closing their connections.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

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
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let handshake_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let result = match tls {
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(tls) => {
                    match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service);
                            watcher.watch(conn.into_owned()).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
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
