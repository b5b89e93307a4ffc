//! The HTML landing page at `/`: links, each source's health, and a table of agents.
//!
//! Every string that came from upstream (agent names, versions, error messages) is HTML-escaped: agent names are
//! chosen by whoever installed the agent and may contain markup.

use std::fmt::Write as _;
use std::sync::Arc;

use jiff::Timestamp;

use crate::model::age_seconds;
use crate::status::SourceStatus;

/// The most agents listed on the page; beyond that the page links to the JSON API instead of growing without bound.
const MAX_ROWS: usize = 2000;

/// Renders the landing page at `now`. `extra_sections` are ready-made HTML fragments (the alerts section).
pub fn render(sources: &[Arc<SourceStatus>], extra_sections: &[String], now: Timestamp) -> String {
    let mut h = String::with_capacity(16 * 1024);
    h.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>onprem-agent-exporter</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}",
        ".up{color:#1a7f37}.down{color:#cf222e}.stale{color:#9a6700}</style></head><body>",
        "<h1>onprem-agent-exporter</h1>",
        "<p>Prometheus exporter for on-premise agents. ",
        "<a href=\"metrics\">/metrics</a> · <a href=\"api/v1/agents\">/api/v1/agents</a> · ",
        "<a href=\"healthz\">/healthz</a> · <a href=\"readyz\">/readyz</a></p>",
    ));
    let _ = write!(
        h,
        "<p>Version {}. Page rendered at {}.</p>",
        env!("CARGO_PKG_VERSION"),
        now.round(jiff::Unit::Second).unwrap_or(now)
    );
    h.push_str("<h2>Sources</h2><table><tr><th>Account</th><th>Provider</th><th>State</th><th>Agents</th><th>Last success</th><th>Last error</th></tr>");
    for s in sources {
        let (class, state) = match (s.polls, s.up, s.agents.is_some()) {
            (0, _, _) => ("stale", "not polled yet"),
            (_, true, _) => ("up", "up"),
            (_, false, true) => ("stale", "down (serving last good snapshot)"),
            (_, false, false) => ("down", "down"),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{state}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            crate::html::escape(&s.name),
            s.provider,
            s.agents.as_ref().map_or(0, |a| a.agents.len()),
            s.last_success.map_or("never".to_string(), |t| format!(
                "{} ago",
                crate::humanize::age_seconds(age_seconds(now, t))
            )),
            s.last_error
                .as_ref()
                .map_or(String::new(), |e| crate::html::escape(&format!(
                    "{}: {}",
                    e.reason, e.message
                ))),
        );
    }
    h.push_str("</table>");
    for section in extra_sections {
        h.push_str(section);
    }
    h.push_str("<h2>Agents</h2><table><tr><th>Account</th><th>Name</th><th>Id</th><th>Version</th><th>Offline</th><th>Heartbeat age</th><th>Token age</th></tr>");
    let mut rows = 0usize;
    let total: usize = sources
        .iter()
        .map(|s| s.agents.as_ref().map_or(0, |a| a.agents.len()))
        .sum();
    'outer: for s in sources {
        let Some(list) = &s.agents else { continue };
        for a in &list.agents {
            if rows == MAX_ROWS {
                break 'outer;
            }
            rows += 1;
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                crate::html::escape(&s.name),
                crate::html::escape(&a.name),
                crate::html::escape(&a.id),
                crate::html::escape(a.version.as_deref().unwrap_or("")),
                if a.offline {
                    "<span class=\"down\">yes</span>"
                } else {
                    "no"
                },
                a.last_heartbeat
                    .map_or("never".to_string(), |t| crate::humanize::age_seconds(
                        age_seconds(now, t)
                    )),
                a.token_rotated
                    .map_or("n/a".to_string(), |t| crate::humanize::age_seconds(
                        age_seconds(now, t)
                    )),
            );
        }
    }
    h.push_str("</table>");
    if rows < total {
        let _ = write!(
            h,
            "<p>Showing {rows} of {total} agents; see <a href=\"api/v1/agents\">/api/v1/agents</a> for all.</p>"
        );
    }
    h.push_str("</body></html>\n");
    h
}
