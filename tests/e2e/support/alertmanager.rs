//! A real Alertmanager cluster (Debian's `prometheus-alertmanager`) on 127.0.0.1, and the HTTP sink its webhook
//! receiver posts to. Every process is killed when its guard drops; a missing binary fails the test loudly.

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::Value;

use super::free_port;
use super::prometheus::{Running, require_program};

/// Webhook notifications as the sink received them, in order.
#[derive(Clone, Default)]
pub struct Sink {
    pub addr: Option<SocketAddr>,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Sink {
    /// Serves `POST /` on a free port of 127.0.0.1 for the rest of the test.
    pub async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Sink {
            addr: Some(listener.local_addr().unwrap()),
            ..Sink::default()
        };
        let state = sink.received.clone();
        let app = Router::new()
            .route(
                "/",
                post(
                    |State(s): State<Arc<Mutex<Vec<Value>>>>, body: axum::Json<Value>| async move {
                        s.lock().unwrap().push(body.0);
                    },
                ),
            )
            .with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        sink
    }

    /// The webhook URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr.unwrap())
    }

    /// Every notification so far.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// `(status, alertname, account)` of every notification so far.
    pub fn summary(&self) -> Vec<(String, String, String)> {
        self.received()
            .iter()
            .map(|n| {
                let s = |k: &str| n["groupLabels"][k].as_str().unwrap_or("").to_string();
                (
                    n["status"].as_str().unwrap_or("").to_string(),
                    s("alertname"),
                    s("account"),
                )
            })
            .collect()
    }
}

/// A webhook-only Alertmanager config grouped by alertname and account, with short timers.
pub fn webhook_config(sink: &Sink) -> String {
    format!(
        "route:\n  receiver: sink\n  group_by: [alertname, account]\n  group_wait: 1s\n  group_interval: 1s\n  \
         repeat_interval: 1h\nreceivers:\n  - name: sink\n    webhook_configs:\n      - url: {}\n        \
         send_resolved: true\n",
        sink.url()
    )
}

/// One Alertmanager of a cluster.
pub struct Alertmanager {
    pub process: Running,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

/// How long the second member of a cluster waits for the first one's notification log before it notifies itself
/// (Alertmanager's `--cluster.peer-timeout`, 15 s by default). It absorbs the skew between the moments the members
/// received an alert, and gossip's delay: on a loaded 2-core machine 1 s was not always enough, and both members
/// notified. Tests wait this long (plus `group_interval`) before they conclude that no duplicate is coming.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts `n` Alertmanagers clustered over loopback, each loading `config`, with a short [`PEER_TIMEOUT`] so the
/// second member takes over within seconds. Waits until each answers `/-/ready`.
///
/// The ports come from [`free_port`], outside the kernel's ephemeral range. Should another program still take one
/// between the look-up and Alertmanager's bind, the member exits with "address already in use" and the whole
/// cluster is started again on new ports, at most three times.
pub async fn start_cluster(dir: &Path, config: &str, n: usize) -> Vec<Alertmanager> {
    for attempt in 1..=3 {
        match try_start_cluster(dir, config, n, attempt).await {
            Some(ams) => return ams,
            None => continue,
        }
    }
    panic!(
        "Alertmanager could not bind free ports in three attempts; see the logs in {}",
        dir.display()
    );
}

/// One attempt of [`start_cluster`]: `None` when a member lost its port to another process.
async fn try_start_cluster(
    dir: &Path,
    config: &str,
    n: usize,
    attempt: u32,
) -> Option<Vec<Alertmanager>> {
    let binary = require_program("prometheus-alertmanager");
    let config_file = dir.join("alertmanager.yml");
    std::fs::write(&config_file, config).unwrap();
    let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let mut ams = Vec::new();
    for (i, port) in cluster_ports.iter().enumerate() {
        let web = free_port();
        let storage = dir.join(format!("am-{i}-{attempt}"));
        std::fs::create_dir_all(&storage).unwrap();
        let log = dir.join(format!("am-{i}-{attempt}.log"));
        let mut cmd = Command::new(&binary);
        cmd.arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .arg(format!("--cluster.listen-address=127.0.0.1:{port}"))
            .arg(format!("--cluster.advertise-address=127.0.0.1:{port}"))
            .arg(format!(
                "--cluster.peer-timeout={}s",
                PEER_TIMEOUT.as_secs()
            ))
            .arg("--cluster.gossip-interval=50ms")
            .arg("--cluster.pushpull-interval=1s");
        for (j, other) in cluster_ports.iter().enumerate() {
            if j != i {
                cmd.arg(format!("--cluster.peer=127.0.0.1:{other}"));
            }
        }
        let f = File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("alertmanager starts");
        ams.push(Alertmanager {
            process: Running {
                name: "alertmanager",
                child,
                log,
            },
            url: format!("http://127.0.0.1:{web}"),
        });
    }
    for am in &mut ams {
        let url = format!("{}/-/ready", am.url);
        let log = am.process.log.clone();
        let child = std::sync::Mutex::new(&mut am.process.child);
        let ready = super::wait::wait_until(
            "Alertmanager to be ready",
            // Connection refused until it listens: not an error here. An exit is an answer too.
            async || {
                if let Ok(r) = reqwest::get(&url).await
                    && r.status().is_success()
                {
                    return Some(true);
                }
                let exited = child.lock().unwrap().try_wait().ok().flatten().is_some();
                exited.then_some(false)
            },
            || std::fs::read_to_string(&log).unwrap_or_default(),
        )
        .await;
        if !ready {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                text.contains("address already in use"),
                "Alertmanager exited:\n{text}"
            );
            return None;
        }
    }
    Some(ams)
}

impl Alertmanager {
    /// `GET /api/v2/alerts` (active, silenced and inhibited alike).
    pub async fn alerts(&self) -> Vec<Value> {
        let (status, body) = super::http::get(&format!("{}/api/v2/alerts", self.url)).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Vec<Value>>(&body).unwrap()
    }
}
