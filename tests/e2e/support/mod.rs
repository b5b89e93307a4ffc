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

/// A port of 127.0.0.1 that is free now, for a server started later on a known port (an SMTP server that comes
/// back after an outage, a Prometheus listener, a port nothing listens on).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}
