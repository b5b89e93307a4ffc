//! The status page's HTML: the title, the summary strip, sources, alerts, notifications, agents, and the 404 page.
//!
//! Written with `maud`, so the markup is checked when the crate compiles and every interpolated string is
//! HTML-escaped: agent names are chosen by whoever installed the agent and may contain markup, and the 404 page
//! repeats the path it was asked for. The style sheet is inline because the Content-Security-Policy allows inline
//! styles and nothing external.
//!
//! The layout answers "what is wrong" on the first screen of a laptop (1400 px) and of a phone (390 px): the title
//! and the summary strip, then the sources, the alerts (grouped, collapsed), the notification destinations that
//! fail, and the agents last. The page itself never scrolls sideways; a table wider than the screen scrolls inside
//! its own box, with each agent's name and state in its first two columns.

use jiff::Timestamp;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::domain::Severity;
use crate::domain::age_seconds;
use crate::humanize;
use crate::page::summary::{self, AlertGroup, Condition, Summary};
use crate::page::{MAX_AGENT_ROWS, MAX_ALERT_ROWS_PER_GROUP, PageData, REFRESH_SECONDS};
use crate::status::SourceStatus;

/// The page's style sheet. Colours: red for what needs someone now, amber for what needs someone soon, green for
/// fine, grey for what is muted or unknown. `.scroll` boxes let a wide table scroll without the page; long
/// upstream strings (names, errors) wrap anywhere rather than widen a column past the screen.
const STYLE: &str = concat!(
    "*{box-sizing:border-box}",
    "body{font-family:system-ui,sans-serif;margin:1em 1.5em;color:#1f2328;background:#fff}",
    "h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.2em 0 .4em}",
    "a{color:#0969da}.scroll{overflow-x:auto;max-width:100%}",
    "table{border-collapse:collapse;margin:.3em 0}",
    "td,th{border-bottom:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}",
    "th{background:#f6f8fa;white-space:nowrap}td.n{white-space:nowrap}",
    "td.err{min-width:14em;max-width:48em;overflow-wrap:anywhere}",
    "td.name{min-width:9em;max-width:22em;overflow-wrap:anywhere}",
    "td.state{min-width:6em}code{overflow-wrap:anywhere}",
    ".id{display:block;font-size:.8em;color:#59636e}",
    ".meta{color:#59636e;font-size:.9em;margin:0}",
    "#summary{display:flex;flex-wrap:wrap;gap:.5em;margin:.8em 0}",
    "#summary .tile{border:1px solid #d0d7de;border-radius:6px;padding:.35em .8em;min-width:7em}",
    "#summary .n{font-size:1.6em;font-weight:600;display:block}",
    ".tile.crit{background:#ffebe9;border-color:#cf222e}.tile.warn{background:#fff8c5;border-color:#9a6700}",
    ".tile.ok{background:#dafbe1;border-color:#1a7f37}",
    ".crit{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}.ok{color:#1a7f37}",
    ".muted{color:#818b98}tr.muted td{color:#818b98}",
    "details{border:1px solid #d0d7de;border-radius:6px;margin:.35em 0;padding:.3em .7em}",
    "details.crit{border-left:4px solid #cf222e}details.warn{border-left:4px solid #9a6700}",
    "details.muted{border-left:4px solid #d0d7de}summary{cursor:pointer;overflow-wrap:anywhere}",
    "@media (max-width:700px){body{margin:.6em}#summary{gap:.35em}",
    "#summary .tile{min-width:5.5em;padding:.3em .5em}#summary .n{font-size:1.3em}",
    "td,th{padding:.2em .35em}td.name{min-width:7em;max-width:11em}td.err{min-width:10em}}",
);

/// Renders the status page for `data` at `now`.
pub fn render(data: &PageData, now: Timestamp) -> String {
    let s = summary::summarize(data, now);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(REFRESH_SECONDS);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "onprem-agent-exporter" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "onprem-agent-exporter" }
                p.meta {
                    "Version " (env!("CARGO_PKG_VERSION")) " · rendered "
                    (now.round(jiff::Unit::Second).unwrap_or(now))
                    " · refreshes every " (REFRESH_SECONDS) " s"
                    @if let Some(shard) = &data.shard {
                        " · " span #shard { "shard " (shard) }
                    }
                    " · " a href="metrics" { "/metrics" }
                    " · " a href="api/v1/agents" { "/api/v1/agents" }
                    " · " a href="healthz" { "/healthz" }
                    " · " a href="readyz" { "/readyz" }
                }
                (summary_strip(&s))
                @for p in &data.problems {
                    p.problem.crit { strong { "Cannot:" } " " (p) }
                }
                (sources_table(&data.sources, now))
                (alerts_section(data, now))
                (notifications_section(data, now))
                (agents_table(data, now))
            }
        }
    };
    let mut out = page.into_string();
    out.push('\n');
    out
}

/// `ok` when `n` is zero, `bad` otherwise.
fn level(n: usize, bad: &'static str) -> &'static str {
    if n == 0 { "ok" } else { bad }
}

/// One tile of the summary strip; `class` is `crit`, `warn`, `ok` or empty.
fn tile(id: &str, label: &str, n: impl std::fmt::Display, class: &str) -> Markup {
    html! {
        div class={ "tile " (class) } id={ "sum-" (id) } { span.n { (n) } (label) }
    }
}

/// The strip under the title: one tile per figure, red when it needs someone now.
fn summary_strip(s: &Summary) -> Markup {
    html! {
        div #summary {
            (tile("agents", "agents", s.agents, ""))
            (tile("offline", "offline", s.offline, level(s.offline, "crit")))
            (tile("stale", "heartbeat stale", s.heartbeat_stale, level(s.heartbeat_stale, "crit")))
            (tile("due", "tokens due", s.tokens_due, level(s.tokens_due, "warn")))
            (tile("overdue", "tokens overdue", s.tokens_overdue, level(s.tokens_overdue, "crit")))
            (tile("down", "sources down", s.sources_down, level(s.sources_down, "crit")))
            @if let Some(q) = s.mails_queued {
                (tile("queued", "mails queued", q, if q == 0 { "ok" } else { "warn" }))
            }
        }
    }
}

fn age(now: Timestamp, t: Timestamp) -> String {
    humanize::age_seconds(age_seconds(now, t))
}

/// The sources table: a failing source in red with its error and since when.
fn sources_table(sources: &[std::sync::Arc<SourceStatus>], now: Timestamp) -> Markup {
    html! {
        h2 { "Sources" }
        div.scroll {
            table #sources {
                tr { th { "Account" } th { "Provider" } th { "State" } th { "Agents" } th { "Last success" } th { "Error" } }
                @for s in sources {
                    tr id={ "source-" (s.name) } class=(if s.polls > 0 && !s.up { "down" } else { "" }) {
                        td { (s.name) }
                        td { (s.provider) }
                        @if s.polls == 0 {
                            td.muted { "not polled yet" }
                        } @else if s.up {
                            td.ok { "up" }
                        } @else {
                            td.crit {
                                "down"
                                @if let Some(t) = s.failing_since { " for " (age(now, t)) }
                                @if s.agents.is_some() { "; showing the last good snapshot" }
                            }
                        }
                        td.n { (s.agents.as_ref().map_or(0, |a| a.agents.len())) }
                        td.n {
                            @match s.last_success {
                                Some(t) => { (age(now, t)) " ago" }
                                None => "never",
                            }
                        }
                        td.err {
                            @if let Some(e) = &s.last_error { (e.reason) ": " (e.message) }
                        }
                    }
                }
            }
        }
    }
}

/// The class of a severity: red for critical, amber below.
fn severity_class(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "crit",
        Severity::Warning => "warn",
        Severity::Info => "",
    }
}

/// The class of an agent's condition.
fn condition_class(c: Condition) -> &'static str {
    match c {
        Condition::Offline | Condition::Stale | Condition::TokenOverdue => "crit",
        Condition::TokenDue => "warn",
        Condition::Fine => "ok",
    }
}

/// The agents table, worst first, at most [`MAX_AGENT_ROWS`] rows. Name and state come first, so that on a phone
/// they are on screen while the rest of the row scrolls inside the table's box.
fn agents_table(data: &PageData, now: Timestamp) -> Markup {
    let rows = summary::agent_rows(data, now);
    let alert_column = data.alerts.is_some();
    html! {
        h2 { "Agents" }
        div.scroll {
            table #agents {
                tr {
                    th { "Name" } th { "State" }
                    @if alert_column { th { "Alert" } }
                    th { "Account" } th { "Provider" } th { "Version" } th { "Heartbeat age" } th { "Token age" }
                }
                @for r in rows.iter().take(MAX_AGENT_ROWS) {
                    tr id={ "agent-" (r.source.name) "-" (r.agent.id) } {
                        td.name { (r.agent.name) code.id { (r.agent.id) } }
                        td.state {
                            @for (i, c) in r.conditions.iter().enumerate() {
                                @if i > 0 { ", " }
                                span class=(condition_class(*c)) { (c.as_str()) }
                            }
                        }
                        @if alert_column {
                            @match r.alert {
                                Some(a) => {
                                    td class=(if a.muted { "muted" } else { severity_class(a.severity) }) {
                                        (a.state) " " (a.alertname.as_str())
                                        @if a.muted { " (muted)" }
                                    }
                                }
                                None => td.ok { "none" },
                            }
                        }
                        td { (r.source.name) }
                        td { (r.source.provider) }
                        td {
                            @match &r.agent.version {
                                Some(v) => (v),
                                None => span.muted { "unknown" },
                            }
                        }
                        td.n {
                            @match r.agent.last_heartbeat {
                                Some(t) => (age(now, t)),
                                None => "never",
                            }
                        }
                        td.n {
                            @match r.agent.token_rotated {
                                Some(t) => (age(now, t)),
                                None => "n/a",
                            }
                        }
                    }
                }
            }
        }
        @if rows.len() > MAX_AGENT_ROWS {
            p {
                "Showing the worst " (MAX_AGENT_ROWS) " of " (rows.len()) " agents; see "
                a href="api/v1/agents" { "/api/v1/agents" } " for all."
            }
        }
    }
}

/// The alerts, one collapsed `<details>` per rule and account, `SourceDown` first; the summary line of each says
/// enough (rule, account, severity, counts) to read the section without opening any.
fn alerts_section(data: &PageData, now: Timestamp) -> Markup {
    let Some(panel) = &data.alerts else {
        return html! {};
    };
    let groups = summary::alert_groups(&panel.alerts);
    html! {
        section #alerts {
            h2 { "Alerts" }
            @if groups.is_empty() {
                p.ok { "No alerts." }
            }
            @for g in &groups {
                (alert_group(g, now))
            }
            p.meta {
                a href="api/v1/alerts" { "/api/v1/alerts" } " · " a href="api/v1/silences" { "/api/v1/silences" }
                " (" (panel.active_silences) " active; "
                @if panel.writes_open {
                    "writable: --web.enable-admin-api is set"
                } @else {
                    "read-only: start with --web.enable-admin-api to create or delete silences"
                }
                ")"
            }
        }
    }
}

fn alert_group(g: &AlertGroup<'_>, now: Timestamp) -> Markup {
    let class = if g.shown.is_empty() {
        "muted"
    } else {
        severity_class(g.severity)
    };
    let mut counts = Vec::new();
    for (n, what) in [
        (g.firing, "firing"),
        (g.pending, "pending"),
        (g.inhibited, "inhibited"),
        (g.silenced, "silenced"),
    ] {
        if n > 0 {
            counts.push(format!("{n} {what}"));
        }
    }
    let muted = g.inhibited + g.silenced;
    html! {
        details class={ "group " (class) } data-alertname=(g.alertname.as_str()) {
            summary {
                strong { (g.alertname.as_str()) } " · " (g.account) " · "
                span class=(severity_class(g.severity)) { (g.severity.as_str()) }
                " · " (counts.join(", "))
            }
            @if !g.shown.is_empty() {
                div.scroll {
                    table {
                        tr { th { "State" } th { "Agent" } th { "Value" } th { "Threshold" } th { "Since" } }
                        @for a in g.shown.iter().take(MAX_ALERT_ROWS_PER_GROUP) {
                            tr.alert {
                                td class=(if a.state == "firing" { severity_class(a.severity) } else { "" }) {
                                    (a.state)
                                }
                                td.name {
                                    (a.agent_name.as_deref().unwrap_or(""))
                                    @if let Some(id) = &a.agent_id { code.id { (id) } }
                                }
                                td { (a.value) }
                                td { (a.threshold) }
                                td.n { (age(now, a.active_at)) " ago" }
                            }
                        }
                    }
                }
                @if g.shown.len() > MAX_ALERT_ROWS_PER_GROUP {
                    p {
                        "and " (g.shown.len() - MAX_ALERT_ROWS_PER_GROUP) " more; see "
                        a href="api/v1/alerts" { "/api/v1/alerts" } "."
                    }
                }
            }
            @if muted > 0 {
                p.muted {
                    (muted) " muted alert" @if muted != 1 { "s" }
                    " not listed (inhibited by a firing alert, or silenced)."
                }
            }
        }
    }
}

/// Notification health: the outbox's queue, and per destination the last failed delivery, how long ago and why.
fn notifications_section(data: &PageData, now: Timestamp) -> Markup {
    let Some(n) = &data.notifications else {
        return html! {};
    };
    let failing: Vec<_> = n
        .channels
        .iter()
        .filter_map(|c| c.last_failure.as_ref().map(|f| (c, f)))
        .collect();
    html! {
        section #notifications {
            h2 { "Notifications" }
            p {
                span class=(if n.queued == 0 { "ok" } else { "warn" }) { (n.queued) " queued" }
                " · " (n.sent) " sent · "
                span class=(if n.failed == 0 { "" } else { "warn" }) { (n.failed) " failed attempts" }
                " since start"
            }
            @if failing.is_empty() {
                p.ok { "No delivery has failed since start." }
            } @else {
                div.scroll {
                    table #destinations {
                        tr { th { "Destination" } th { "Last failure" } th { "Error" } }
                        @for (c, (t, why)) in &failing {
                            tr {
                                td { (c.channel) }
                                td.n.crit { (age(now, *t)) " ago" }
                                td.err { (why) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The 404 page: says what was asked for and where to go instead.
pub fn not_found(path: &str) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Not found · onprem-agent-exporter" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Not found" }
                p { "There is nothing at " code { (path) } "." }
                p {
                    "Try the " a href="/" { "status page" } ", " a href="/metrics" { "/metrics" } ", "
                    a href="/api/v1/agents" { "/api/v1/agents" } " or " a href="/healthz" { "/healthz" } "."
                }
            }
        }
    };
    let mut out = page.into_string();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::{Agent, AgentList, Provider};
    use crate::page::NotificationHealth;

    #[test]
    fn the_summary_strip_comes_under_the_title_and_upstream_strings_are_escaped() {
        let now = Timestamp::now();
        let mut s = SourceStatus::new("<prod>", Provider::Celigo);
        s.up = true;
        s.polls = 1;
        s.agents = Some(Arc::new(AgentList {
            polled_at: now,
            agents: vec![Agent::new("a1", "<b>edge</b>")],
        }));
        let mut data = PageData::new(vec![Arc::new(s)]);
        data.notifications = Some(NotificationHealth {
            queued: 5,
            failed: 20,
            ..NotificationHealth::default()
        });
        let html = render(&data, now);
        let strip = html.find("id=\"summary\"").expect("a summary strip");
        let title = html.find("<h1").expect("a title");
        let sources = html.find("id=\"sources\"").expect("a sources table");
        assert!(
            title < strip && strip < sources,
            "the title, then the strip, then the sources: {html}"
        );
        assert!(html.contains("&lt;b&gt;edge&lt;/b&gt;"), "saw {html}");
        assert!(!html.contains("<b>edge"), "raw upstream markup in {html}");
        assert!(html.contains("unknown</span>"), "a missing version: {html}");
        assert!(
            html.contains("id=\"sum-queued\"><span class=\"n\">5</span>"),
            "saw {html}"
        );
        assert!(html.contains("http-equiv=\"refresh\""), "saw {html}");
        assert!(
            !html.contains("<script"),
            "the CSP allows no script: {html}"
        );
    }

    #[test]
    fn a_down_source_is_red_with_its_error_and_since_when() {
        let now = Timestamp::now();
        let mut s = SourceStatus::new("prod", Provider::Celigo);
        s.polls = 4;
        s.failing_since = Some(
            now.checked_sub(std::time::Duration::from_secs(120))
                .unwrap(),
        );
        s.last_error = Some(crate::status::SourceError {
            reason: crate::sources::ErrorReason::ALL[0],
            message: "connection refused".into(),
            url: None,
        });
        let html = render(&PageData::new(vec![Arc::new(s)]), now);
        assert!(
            html.contains("<td class=\"crit\">down for 2m"),
            "saw {html}"
        );
        assert!(html.contains("connection refused"), "saw {html}");
        assert!(
            html.contains("id=\"sum-down\"><span class=\"n\">1</span>"),
            "saw {html}"
        );
    }

    #[test]
    fn each_failing_destination_shows_its_last_error_and_its_age() {
        let now = Timestamp::now();
        let mut data = PageData::new(Vec::new());
        data.notifications = Some(NotificationHealth {
            queued: 2,
            sent: 6,
            failed: 6,
            channels: vec![
                crate::page::ChannelHealth {
                    channel: "email".into(),
                    last_failure: Some((
                        now.checked_sub(std::time::Duration::from_secs(90)).unwrap(),
                        "connect: connection refused <smtp>".into(),
                    )),
                },
                crate::page::ChannelHealth {
                    channel: "ops (slack)".into(),
                    last_failure: None,
                },
            ],
        });
        let html = render(&data, now);
        assert!(
            html.contains(
                "<tr><td>email</td><td class=\"n crit\">1m 30s ago</td><td class=\"err\">connect: connection \
                 refused &lt;smtp&gt;</td></tr>"
            ),
            "saw {html}"
        );
        assert!(
            !html.contains("ops (slack)"),
            "a destination that never failed: {html}"
        );
    }

    #[test]
    fn the_not_found_page_escapes_the_path() {
        let html = not_found("/<script>");
        assert!(
            html.contains("&lt;script&gt;") && !html.contains("<script>"),
            "saw {html}"
        );
    }

    #[test]
    fn every_source_and_agent_row_is_the_target_of_the_links_in_alerts() {
        let now = Timestamp::now();
        let mut s = SourceStatus::new("prod eu", Provider::Celigo);
        s.polls = 1;
        s.up = true;
        s.agents = Some(Arc::new(crate::domain::AgentList {
            polled_at: now,
            agents: vec![crate::domain::Agent::new("a<1>", "edge")],
        }));
        let html = render(&PageData::new(vec![Arc::new(s)]), now);
        assert!(html.contains("<tr id=\"source-prod eu\""), "saw {html}");
        assert!(
            html.contains("<tr id=\"agent-prod eu-a&lt;1&gt;\""),
            "saw {html}"
        );
    }
}
