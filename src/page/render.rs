//! The status page's HTML: the summary strip, sources, agents, alerts, notifications, and the 404 page.
//!
//! Every string that came from upstream (agent names, versions, error messages) or from a request (the 404's path)
//! is HTML-escaped: agent names are chosen by whoever installed the agent and may contain markup. The style sheet is
//! inline because the Content-Security-Policy allows inline styles and nothing external.

use std::fmt::Write as _;

use jiff::Timestamp;

use crate::domain::AlertName;
use crate::domain::Severity;
use crate::domain::age_seconds;
use crate::html::escape;
use crate::humanize;
use crate::page::summary::{self, AlertGroup, Condition, Summary};
use crate::page::{MAX_AGENT_ROWS, MAX_ALERT_ROWS_PER_GROUP, PageData, REFRESH_SECONDS};
use crate::status::SourceStatus;

/// The page's style sheet. Colours: red for what needs someone now, amber for what needs someone soon, green for
/// fine, grey for what is muted or unknown.
const STYLE: &str = concat!(
    "body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#1f2328;background:#fff}",
    "h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.4em 0 .4em}",
    "a{color:#0969da}table{border-collapse:collapse;margin:.3em 0}",
    "td,th{border-bottom:1px solid #d0d7de;padding:.25em .7em;text-align:left;white-space:nowrap}",
    "th{background:#f6f8fa}td.err{white-space:normal;max-width:50em}",
    ".meta{color:#59636e;font-size:.9em}",
    "#summary{display:flex;flex-wrap:wrap;gap:.6em;margin:.8em 0}",
    "#summary .tile{border:1px solid #d0d7de;border-radius:6px;padding:.4em .9em;min-width:7em}",
    "#summary .n{font-size:1.6em;font-weight:600;display:block}",
    ".tile.crit{background:#ffebe9;border-color:#cf222e}.tile.warn{background:#fff8c5;border-color:#9a6700}",
    ".tile.ok{background:#dafbe1;border-color:#1a7f37}",
    ".crit{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}.ok{color:#1a7f37}",
    ".muted{color:#818b98}tr.muted td{color:#818b98}",
    "details{border:1px solid #d0d7de;border-radius:6px;margin:.35em 0;padding:.3em .7em}",
    "details.crit{border-left:4px solid #cf222e}details.warn{border-left:4px solid #9a6700}",
    "details.muted{border-left:4px solid #d0d7de}summary{cursor:pointer}",
);

/// Renders the status page for `data` at `now`.
pub fn render(data: &PageData, now: Timestamp) -> String {
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>onprem-agent-exporter</title><style>{STYLE}</style></head><body>"
    );
    let s = summary::summarize(data, now);
    summary_strip(&mut h, &s);
    for p in &data.problems {
        let _ = writeln!(
            h,
            "<p class=\"problem crit\"><strong>Cannot:</strong> {}</p>",
            escape(p)
        );
    }
    let _ = write!(
        h,
        "<h1>onprem-agent-exporter</h1><p class=\"meta\">Version {} · rendered {} · refreshes every {REFRESH_SECONDS} s",
        env!("CARGO_PKG_VERSION"),
        now.round(jiff::Unit::Second).unwrap_or(now)
    );
    if let Some(shard) = &data.shard {
        let _ = write!(h, " · <span id=\"shard\">shard {}</span>", escape(shard));
    }
    h.push_str(
        " · <a href=\"metrics\">/metrics</a> · <a href=\"api/v1/agents\">/api/v1/agents</a> · \
         <a href=\"healthz\">/healthz</a> · <a href=\"readyz\">/readyz</a></p>",
    );
    sources_table(&mut h, &data.sources, now);
    agents_table(&mut h, data, now);
    alerts_section(&mut h, data, now);
    notifications_section(&mut h, data, now);
    h.push_str("</body></html>\n");
    h
}

/// One tile of the summary strip; `class` is `crit`, `warn` or `ok`.
fn tile(h: &mut String, id: &str, label: &str, n: impl std::fmt::Display, class: &str) {
    let _ = write!(
        h,
        "<div class=\"tile {class}\" id=\"sum-{id}\"><span class=\"n\">{n}</span>{label}</div>"
    );
}

/// The strip at the top of the page: one tile per figure, red when it needs someone now.
fn summary_strip(h: &mut String, s: &Summary) {
    let sev = |n: usize, bad: &'static str| if n == 0 { "ok" } else { bad };
    h.push_str("<div id=\"summary\">");
    tile(h, "agents", "agents", s.agents, "");
    tile(h, "offline", "offline", s.offline, sev(s.offline, "crit"));
    tile(
        h,
        "stale",
        "heartbeat stale",
        s.heartbeat_stale,
        sev(s.heartbeat_stale, "crit"),
    );
    tile(
        h,
        "due",
        "tokens due",
        s.tokens_due,
        sev(s.tokens_due, "warn"),
    );
    tile(
        h,
        "overdue",
        "tokens overdue",
        s.tokens_overdue,
        sev(s.tokens_overdue, "crit"),
    );
    tile(
        h,
        "down",
        "sources down",
        s.sources_down,
        sev(s.sources_down, "crit"),
    );
    if let Some(q) = s.mails_queued {
        tile(
            h,
            "queued",
            "mails queued",
            q,
            if q == 0 { "ok" } else { "warn" },
        );
    }
    h.push_str("</div>");
}

fn age(now: Timestamp, t: Timestamp) -> String {
    humanize::age_seconds(age_seconds(now, t))
}

/// The sources table: a failing source in red with its error and since when.
fn sources_table(h: &mut String, sources: &[std::sync::Arc<SourceStatus>], now: Timestamp) {
    h.push_str(
        "<h2>Sources</h2><table id=\"sources\"><tr><th>Account</th><th>Provider</th><th>State</th>\
         <th>Agents</th><th>Last success</th><th>Error</th></tr>",
    );
    for s in sources {
        let state = if s.polls == 0 {
            "<td class=\"muted\">not polled yet</td>".to_string()
        } else if s.up {
            "<td class=\"ok\">up</td>".to_string()
        } else {
            let since = s
                .failing_since
                .map_or(String::new(), |t| format!(" for {}", age(now, t)));
            let kept = if s.agents.is_some() {
                "; showing the last good snapshot"
            } else {
                ""
            };
            format!("<td class=\"crit\">down{since}{kept}</td>")
        };
        let _ = write!(
            h,
            "<tr id=\"source-{}\" class=\"{}\"><td>{}</td><td>{}</td>{state}<td>{}</td><td>{}</td>\
             <td class=\"err\">{}</td></tr>",
            escape(&s.name),
            if s.polls > 0 && !s.up { "down" } else { "" },
            escape(&s.name),
            s.provider,
            s.agents.as_ref().map_or(0, |a| a.agents.len()),
            s.last_success
                .map_or("never".to_string(), |t| format!("{} ago", age(now, t))),
            s.last_error
                .as_ref()
                .map_or(String::new(), |e| escape(&format!(
                    "{}: {}",
                    e.reason, e.message
                ))),
        );
    }
    h.push_str("</table>");
}

/// The class of a severity: red for critical, amber below.
fn severity_class(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "crit",
        Severity::Warning => "warn",
        Severity::Info => "",
    }
}

/// The agents table, worst first, at most [`MAX_AGENT_ROWS`] rows.
fn agents_table(h: &mut String, data: &PageData, now: Timestamp) {
    let rows = summary::agent_rows(data, now);
    let alert_column = data.alerts.is_some();
    h.push_str(
        "<h2>Agents</h2><table id=\"agents\"><tr><th>Account</th><th>Provider</th><th>Name</th><th>Id</th>\
         <th>Version</th><th>State</th><th>Heartbeat age</th><th>Token age</th>",
    );
    if alert_column {
        h.push_str("<th>Alert</th>");
    }
    h.push_str("</tr>");
    for r in rows.iter().take(MAX_AGENT_ROWS) {
        let conditions: Vec<String> = r
            .conditions
            .iter()
            .map(|c| {
                let class = match c {
                    Condition::Offline | Condition::Stale | Condition::TokenOverdue => "crit",
                    Condition::TokenDue => "warn",
                    Condition::Fine => "ok",
                };
                format!("<span class=\"{class}\">{}</span>", c.as_str())
            })
            .collect();
        let version = match &r.agent.version {
            Some(v) => escape(v),
            None => "<span class=\"muted\">unknown</span>".to_string(),
        };
        let _ = write!(
            h,
            "<tr id=\"agent-{}-{}\"><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{version}</td>\
             <td>{}</td><td>{}</td><td>{}</td>",
            escape(&r.source.name),
            escape(&r.agent.id),
            escape(&r.source.name),
            r.source.provider,
            escape(&r.agent.name),
            escape(&r.agent.id),
            conditions.join(", "),
            r.agent
                .last_heartbeat
                .map_or("never".to_string(), |t| age(now, t)),
            r.agent
                .token_rotated
                .map_or("n/a".to_string(), |t| age(now, t)),
        );
        if alert_column {
            match r.alert {
                Some(a) => {
                    let class = if a.muted {
                        "muted"
                    } else {
                        severity_class(a.severity)
                    };
                    let muted = if a.muted { " (muted)" } else { "" };
                    let _ = write!(
                        h,
                        "<td class=\"{class}\">{} {}{muted}</td>",
                        a.state,
                        a.alertname.as_str()
                    );
                }
                None => h.push_str("<td class=\"ok\">none</td>"),
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    if rows.len() > MAX_AGENT_ROWS {
        let _ = write!(
            h,
            "<p>Showing the worst {MAX_AGENT_ROWS} of {} agents; see <a href=\"api/v1/agents\">/api/v1/agents</a> \
             for all.</p>",
            rows.len()
        );
    }
}

/// The alerts, one collapsed `<details>` per rule and account, `SourceDown` first and open.
fn alerts_section(h: &mut String, data: &PageData, now: Timestamp) {
    let Some(panel) = &data.alerts else { return };
    let groups = summary::alert_groups(&panel.alerts);
    h.push_str("<section id=\"alerts\"><h2>Alerts</h2>");
    if groups.is_empty() {
        h.push_str("<p class=\"ok\">No alerts.</p>");
    }
    for g in &groups {
        alert_group(h, g, now);
    }
    let _ = write!(
        h,
        "<p class=\"meta\"><a href=\"api/v1/alerts\">/api/v1/alerts</a> · \
         <a href=\"api/v1/silences\">/api/v1/silences</a> ({} active; {})</p></section>",
        panel.active_silences,
        if panel.writes_open {
            "writable: --web.enable-admin-api is set"
        } else {
            "read-only: start with --web.enable-admin-api to create or delete silences"
        }
    );
}

fn alert_group(h: &mut String, g: &AlertGroup<'_>, now: Timestamp) {
    let class = if g.shown.is_empty() {
        "muted"
    } else {
        severity_class(g.severity)
    };
    let open = if g.alertname == AlertName::SourceDown && !g.shown.is_empty() {
        " open"
    } else {
        ""
    };
    let mut counts = Vec::new();
    if g.firing > 0 {
        counts.push(format!("{} firing", g.firing));
    }
    if g.pending > 0 {
        counts.push(format!("{} pending", g.pending));
    }
    if g.inhibited > 0 {
        counts.push(format!("{} inhibited", g.inhibited));
    }
    if g.silenced > 0 {
        counts.push(format!("{} silenced", g.silenced));
    }
    let _ = write!(
        h,
        "<details class=\"group {class}\" data-alertname=\"{name}\"{open}><summary><strong>{name}</strong> · {} · \
         <span class=\"{}\">{}</span> · {}</summary>",
        escape(g.account),
        severity_class(g.severity),
        g.severity.as_str(),
        counts.join(", "),
        name = g.alertname.as_str(),
    );
    if !g.shown.is_empty() {
        h.push_str(
            "<table><tr><th>State</th><th>Agent</th><th>Agent id</th><th>Value</th><th>Threshold</th>\
             <th>Since</th></tr>",
        );
        for a in g.shown.iter().take(MAX_ALERT_ROWS_PER_GROUP) {
            let _ = write!(
                h,
                "<tr class=\"alert\"><td class=\"{}\">{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>\
                 <td>{}</td><td>{} ago</td></tr>",
                if a.state == "firing" {
                    severity_class(a.severity)
                } else {
                    ""
                },
                a.state,
                escape(a.agent_name.as_deref().unwrap_or("")),
                escape(a.agent_id.as_deref().unwrap_or("")),
                escape(&a.value),
                escape(&a.threshold),
                age(now, a.active_at),
            );
        }
        h.push_str("</table>");
        if g.shown.len() > MAX_ALERT_ROWS_PER_GROUP {
            let _ = write!(
                h,
                "<p>and {} more; see <a href=\"api/v1/alerts\">/api/v1/alerts</a>.</p>",
                g.shown.len() - MAX_ALERT_ROWS_PER_GROUP
            );
        }
    }
    let muted = g.inhibited + g.silenced;
    if muted > 0 {
        let _ = write!(
            h,
            "<p class=\"muted\">{muted} muted alert{} not listed (inhibited by a firing alert, or silenced).</p>",
            if muted == 1 { "" } else { "s" }
        );
    }
    h.push_str("</details>");
}

/// Notification health: the outbox's queue and each channel's last failure.
fn notifications_section(h: &mut String, data: &PageData, now: Timestamp) {
    let Some(n) = &data.notifications else { return };
    let _ = write!(
        h,
        "<section id=\"notifications\"><h2>Notifications</h2><p><span class=\"{}\">{} queued</span> · {} sent · \
         <span class=\"{}\">{} failed attempts</span> since start</p>",
        if n.queued == 0 { "ok" } else { "warn" },
        n.queued,
        n.sent,
        if n.failed == 0 { "" } else { "warn" },
        n.failed,
    );
    if !n.channels.is_empty() {
        h.push_str("<table><tr><th>Channel</th><th>Last failure</th></tr>");
        for c in &n.channels {
            let last = match &c.last_failure {
                Some((t, why)) => format!(
                    "<td class=\"err crit\">{} ago: {}</td>",
                    age(now, *t),
                    escape(why)
                ),
                None => "<td class=\"ok\">none</td>".to_string(),
            };
            let _ = write!(h, "<tr><td>{}</td>{last}</tr>", escape(&c.channel));
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");
}

/// The 404 page: says what was asked for and where to go instead.
pub fn not_found(path: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found · onprem-agent-exporter\
         </title><style>{STYLE}</style></head><body><h1>Not found</h1><p>There is nothing at <code>{}</code>.</p>\
         <p>Try the <a href=\"/\">status page</a>, <a href=\"/metrics\">/metrics</a>, \
         <a href=\"/api/v1/agents\">/api/v1/agents</a> or <a href=\"/healthz\">/healthz</a>.</p></body></html>\n",
        escape(path)
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::{Agent, AgentList, Provider};
    use crate::page::NotificationHealth;

    #[test]
    fn the_summary_strip_comes_before_everything_and_upstream_strings_are_escaped() {
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
        let first_heading = html.find("<h1").unwrap_or(usize::MAX);
        assert!(strip < first_heading, "the strip must come first: {html}");
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
