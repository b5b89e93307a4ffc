//! The in-process upstream simulator serving on a free port of 127.0.0.1, stopped when its guard drops.

use std::net::SocketAddr;

use onprem_agent_exporter::sim::{SimOptions, Simulator};
use tokio::sync::watch;

/// A simulator serving on a free port of 127.0.0.1 until dropped.
pub struct TestSim {
    pub sim: Simulator,
    pub addr: SocketAddr,
    _stop: watch::Sender<bool>,
}

impl TestSim {
    /// The first page of `GET /v1/agents` as the simulator serves it to a client that asks for every field, so a
    /// test can check that the secrets it must keep out of its outputs were really sent.
    pub async fn raw_agents(&self, token: &str) -> String {
        reqwest::Client::new()
            .get(self.url("/v1/agents"))
            .bearer_auth(token)
            .send()
            .await
            .expect("the simulator answers")
            .text()
            .await
            .expect("the simulator sends a body")
    }

    /// A URL on the simulator, for example `/v1/agents`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Serves `sim` on a free port of 127.0.0.1 until the returned guard drops.
pub async fn serve_sim(sim: Simulator) -> TestSim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the simulator");
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = watch::channel(false);
    let server = sim.clone();
    tokio::spawn(async move {
        let _ = server
            .serve(listener, async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
    });
    TestSim {
        sim,
        addr,
        _stop: tx,
    }
}

/// Serves a simulator built from `opts` that accepts `token` as its API key.
pub async fn spawn_sim(token: &str, opts: SimOptions) -> TestSim {
    serve_sim(Simulator::new(SimOptions {
        token: token.to_string(),
        ..opts
    }))
    .await
}
