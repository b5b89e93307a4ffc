//! Helpers shared by every integration-test module, each written once: the exporter as a child process, the
//! simulators on real sockets, HTTP and exposition reading, bounded waits, SMTP, the fake upstream, Prometheus,
//! Alertmanager, the demo and a headless browser.

pub mod alertmanager;
pub mod browser;
pub mod demo;
pub mod exposition;
pub mod fake_upstream;
pub mod hostile_fleet;
pub mod http;
pub mod http_sink;
pub mod outbox;
pub mod process;
pub mod prometheus;
pub mod simulator;
pub mod smtp;
pub mod tmpfs;
pub mod wait;

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// A port of 127.0.0.1 that is free now, for a server started later on a known port (an SMTP server that comes
/// back after an outage, a Prometheus listener, a port nothing listens on).
///
/// The port is taken from below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), never from inside
/// it: a port the kernel handed out for `127.0.0.1:0` is free again the moment the probe closes, and the kernel may
/// hand it to the next outgoing connection or `:0` listener of a parallel test before the server binds it (a
/// Prometheus once lost its port that way). Below that range only this function hands out ports, each once per
/// test process, starting at an offset from the process id so that two test runs on one machine rarely meet; a
/// port some other program holds is skipped by the bind probe.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = below_ephemeral_range();
    let span = u32::from(high - low);
    let start = std::process::id() % span;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = low + u16::try_from(offset).expect("the offset is below the span");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port of 127.0.0.1 between {low} and {high}");
}

/// The ports [`free_port`] hands out: from 10000 up to the first ephemeral port. Panics when the ephemeral range
/// leaves fewer than 1,000 ports below it, since then the choice would race the kernel again.
fn below_ephemeral_range() -> (u16, u16) {
    const LOW: u16 = 10_000;
    let path = "/proc/sys/net/ipv4/ip_local_port_range";
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let first: u16 = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{path} holds {text:?}, not two port numbers"));
    assert!(
        first >= LOW + 1_000,
        "the ephemeral range in {path} starts at {first}; the tests need ports {LOW}..{first} outside it \
         (at least 1000 of them): raise the range's start, e.g. `sysctl net.ipv4.ip_local_port_range=\"32768 60999\"`"
    );
    (LOW, first)
}
