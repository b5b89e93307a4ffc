//! The status page in a real browser: the demo with one source broken through its simulator's control endpoint,
//! loaded by headless Chromium, and the DOM it builds checked for what an operator must see first. Also the demo's
//! own promises (mail links, a clean exit) and the 404 page.

use serde_json::Value;

use crate::support::browser;
use crate::support::demo::TestDemo;
use crate::support::wait::wait_until;

async fn json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The number in the summary tile `id` (`<div … id="sum-ID"><span class="n">N</span>`).
fn tile(dom: &str, id: &str) -> Option<u64> {
    let at = dom.find(&format!("id=\"sum-{id}\""))?;
    let rest = &dom[at..];
    let n = rest.split("<span class=\"n\">").nth(1)?.split('<').next()?;
    n.trim().parse().ok()
}

/// The part of the DOM from the element with `id` to the end of its first table.
fn region<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the DOM:\n{dom}"));
    let end = dom[start..]
        .find("</table>")
        .map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

fn offline_agents(agents: &Value) -> usize {
    agents["sources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["agents"].as_array().unwrap())
        .filter(|a| a["offline"] == true)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_a_down_source_first_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let outbox = tmp.path().join("outbox");
    let log = tmp.path().join("demo.log");
    let mut demo = TestDemo::start(
        &[
            "--poll-interval",
            "1s",
            "--agents",
            "8",
            "--outbox",
            outbox.to_str().unwrap(),
        ],
        tmp.path(),
        &log,
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    // Break the account only once it has a snapshot, so the page shows its agents from the last good poll.
    let agents_url = format!("{}/api/v1/agents", demo.base);
    wait_until(
        "the first good poll of every account",
        async || {
            let v = json(&agents_url).await;
            v["sources"]
                .as_array()?
                .iter()
                .all(|s| s["up"] == true)
                .then_some(())
        },
        logs,
    )
    .await;
    let status = reqwest::Client::new()
        .put(&demo.control_url)
        .bearer_auth(&demo.control_token)
        .json(&serde_json::json!({"status": 500}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status, 200,
        "the control endpoint refused:\n{}",
        demo.banner
    );

    // SourceDown fires 30 s after the first failure (the demo's timing); it then inhibits that account's agent
    // alerts, so the page has a source down, firing alerts and inhibited ones.
    let alerts_url = format!("{}/api/v1/alerts", demo.base);
    let account = demo.control_account.clone();
    wait_until(
        "SourceDown to fire and inhibit an agent alert",
        async || {
            let v = json(&alerts_url).await;
            let alerts = v["alerts"].as_array()?;
            let down = alerts.iter().any(|a| {
                a["alertname"] == "SourceDown" && a["state"] == "firing" && a["account"] == *account
            });
            let inhibited = alerts.iter().any(|a| a["inhibited"] == true);
            (down && inhibited).then_some(())
        },
        logs,
    )
    .await;

    // The fleet moves between two reads (agents go offline, alerts fire): retry until the API agrees with itself
    // on both sides of the browser's load.
    let page_url = format!("{}/", demo.base);
    let mut attempts = 0;
    let (dom, agents, alerts) = loop {
        let (a0, l0) = (json(&agents_url).await, json(&alerts_url).await);
        let url = page_url.clone();
        let dom = tokio::task::spawn_blocking(move || browser::dump_dom(&url))
            .await
            .unwrap();
        let (a1, l1) = (json(&agents_url).await, json(&alerts_url).await);
        let same_alerts = |a: &Value, b: &Value| {
            let key = |v: &Value| {
                let mut k: Vec<String> = v["alerts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        format!(
                            "{}{}{}{}{}",
                            a["alertname"], a["account"], a["agent_id"], a["state"], a["inhibited"]
                        )
                    })
                    .collect();
                k.sort();
                k
            };
            key(a) == key(b)
        };
        if offline_agents(&a0) == offline_agents(&a1) && same_alerts(&l0, &l1) {
            break (dom, a1, l1);
        }
        attempts += 1;
        assert!(
            attempts < 10,
            "the fleet never held still for one page load"
        );
    };

    // The title, then the summary strip, the sources, the alerts and the notifications, and the agents last.
    let mut last = 0;
    for landmark in [
        "<h1",
        "id=\"summary\"",
        "id=\"sources\"",
        "id=\"alerts\"",
        "id=\"notifications\"",
        "id=\"agents\"",
    ] {
        let at = dom
            .find(landmark)
            .unwrap_or_else(|| panic!("no {landmark} in:\n{dom}"));
        assert!(at > last, "{landmark} is out of order:\n{dom}");
        last = at;
    }
    let sources = agents["sources"].as_array().unwrap();
    let total: usize = sources
        .iter()
        .map(|s| s["agents"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 24, "three fleets of 8: {agents}");
    assert_eq!(tile(&dom, "agents"), Some(total as u64), "{dom}");
    assert_eq!(tile(&dom, "down"), Some(1), "{dom}");
    assert_eq!(
        tile(&dom, "offline"),
        Some(offline_agents(&agents) as u64),
        "{dom}"
    );
    assert!(
        tile(&dom, "queued").is_some(),
        "the mails queued tile: {dom}"
    );

    let sources_table = region(&dom, "sources");
    let down_row = sources_table
        .split("<tr")
        .find(|r| r.contains(&format!("<td>{account}</td>")))
        .expect("the broken account's row");
    assert!(
        down_row.contains("class=\"crit\">down for") && down_row.contains("500"),
        "the down source must be red with its error and since when: {down_row}"
    );

    let first_group = dom
        .find("<details")
        .map(|at| &dom[at..])
        .expect("alert groups");
    assert!(
        first_group.starts_with("<details class=\"group crit\" data-alertname=\"SourceDown\">"),
        "SourceDown must be the first alert group, collapsed:\n{}",
        &first_group[..first_group.len().min(300)]
    );
    assert!(
        !dom.contains("<details open") && !dom.contains(" open=\""),
        "every group starts collapsed:\n{dom}"
    );

    let alerts = alerts["alerts"].as_array().unwrap();
    let told = alerts
        .iter()
        .filter(|a| {
            a["state"] != "resolved"
                && a["inhibited"] == false
                && a["silenced_by"].as_array().is_none_or(|s| s.is_empty())
        })
        .count();
    let inhibited = alerts.iter().filter(|a| a["inhibited"] == true).count();
    assert!(inhibited > 0);
    let rows = dom.matches("<tr class=\"alert\">").count();
    assert_eq!(
        rows, told,
        "one row per alert somebody is told about, none per inhibited one ({inhibited} inhibited):\n{dom}"
    );
    assert!(
        dom.contains("inhibited"),
        "inhibited alerts are counted: {dom}"
    );

    let agents_table = region(&dom, "agents");
    for s in sources {
        for a in s["agents"].as_array().unwrap() {
            let id = a["id"].as_str().unwrap();
            assert!(
                agents_table.contains(&format!("<code class=\"id\">{id}</code>")),
                "agent {id} of {} is missing from the agents table:\n{agents_table}",
                s["account"]
            );
        }
    }

    // The stale tile counts what AgentHeartbeatStale counts: neither offline agents nor those of the down source.
    let stale_alerts = alerts
        .iter()
        .filter(|a| {
            a["alertname"] == "AgentHeartbeatStale"
                && a["state"] != "resolved"
                && a["inhibited"] == false
        })
        .count();
    assert_eq!(
        tile(&dom, "stale"),
        Some(stale_alerts as u64),
        "the stale tile against the AgentHeartbeatStale alerts nobody inhibits:\n{dom}"
    );

    // The same page at a laptop's and a phone's width, with the screenshot the README shows.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let url = page_url.clone();
    let path = shot.clone();
    let layout = tokio::task::spawn_blocking(move || browser::layout(&url, Some(&path)))
        .await
        .unwrap();
    eprintln!("screenshot: {}", shot.display());
    for width in ["desktop", "phone"] {
        let l = &layout[width];
        let n = |k: &str| {
            l[k].as_f64()
                .unwrap_or_else(|| panic!("{width}: no {k} in {l}"))
        };
        assert!(
            n("scroll_width") <= n("viewport"),
            "{width}: the page scrolls sideways: {l}"
        );
        let mut last = -1.0;
        for landmark in [
            "h1",
            "summary",
            "sources",
            "alerts",
            "notifications",
            "agents",
        ] {
            assert!(
                n(landmark) > last,
                "{width}: {landmark} is out of order: {l}"
            );
            last = n(landmark);
        }
        assert_eq!(n("agent_rows"), total as f64, "{width}: {l}");
        assert_eq!(
            l["hidden_agents"],
            serde_json::json!([]),
            "{width}: agents whose name or state is off screen: {l}"
        );
        assert!(
            n("alert_groups") > 0.0 && n("open_alert_groups") == 0.0,
            "{width}: {l}"
        );
    }
    assert_eq!(
        layout["desktop"]["boxes_scrolling"],
        serde_json::json!([]),
        "at 1400 px every table fits: {}",
        layout["desktop"]
    );

    // The demo's mails link back to it (external_url), and a clean exit leaves nothing in the temporary folder.
    let base = demo.base.clone();
    wait_until(
        "a mail that links to the demo's status page",
        async || {
            std::fs::read_dir(&outbox).ok()?.flatten().find_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                text.contains(&base).then_some(())
            })
        },
        logs,
    )
    .await;
    let state_dir = tmp
        .path()
        .join(format!("onprem-agent-exporter-demo-{}", demo.child.id()));
    assert!(
        state_dir.is_dir(),
        "the demo keeps its state in {}",
        state_dir.display()
    );
    let exit = demo.terminate();
    assert!(
        exit.success(),
        "the demo exited with {exit}; log:\n{}",
        logs()
    );
    assert!(
        !state_dir.exists(),
        "the demo left {} behind",
        state_dir.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_gets_a_404_page_that_links_to_the_status_page() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("demo.log");
    let outbox = tmp.path().join("outbox");
    let demo = TestDemo::start(&["--outbox", outbox.to_str().unwrap()], tmp.path(), &log);
    let response = reqwest::get(format!("{}/no/such/<page>", demo.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/html"), "saw {content_type}");
    let body = response.text().await.unwrap();
    assert!(body.contains("<h1>Not found</h1>"), "saw {body}");
    assert!(body.contains("href=\"/\""), "saw {body}");
    assert!(!body.contains("<page>"), "the path must be escaped: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_under_the_api_gets_a_json_404() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("demo.log");
    let outbox = tmp.path().join("outbox");
    let demo = TestDemo::start(&["--outbox", outbox.to_str().unwrap()], tmp.path(), &log);
    for path in ["/api/v1/nothing", "/api/v2/agents", "/api"] {
        let response = reqwest::get(format!("{}{path}", demo.base)).await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("application/json"),
            "{path}: saw {content_type}"
        );
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(path) && error.contains("/api/v1/agents"),
            "{path}: saw {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_exports_its_shard_as_every_command_that_serves_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("demo.log");
    let outbox = tmp.path().join("outbox");
    let demo = TestDemo::start(&["--outbox", outbox.to_str().unwrap()], tmp.path(), &log);
    let text = reqwest::get(format!("{}/metrics", demo.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("onprem_agent_exporter_shard_info{index=\"0\",total=\"1\"} 1"),
        "{text}"
    );
}
