//! The Slack channel: one incoming-webhook POST per notification, with `text` (the notification line Slack shows in
//! alerts and on clients without blocks) and `blocks` (a header, the firing and resolved agents, and a context line).
//!
//! The webhook URL is the credential (`https://hooks.slack.com/services/T…/B…/<secret>`): it is read from
//! `webhook_url_file` and used only to send. Slack answers 200 `ok`; a revoked or mistyped webhook answers 403, 404
//! or 410, which the outbox counts as rejected rather than retrying for a week.

use crate::notify::Told as _;
use serde_json::{Value, json};

use super::{AlertLine, Notification, NotificationStatus};

/// The longest header Slack accepts (a `plain_text` header block holds at most 150 characters).
const HEADER_MAX_CHARS: usize = 150;
/// The longest `mrkdwn` section Slack accepts is 3000 characters; this leaves room for the "and N more" line.
const SECTION_MAX_CHARS: usize = 2800;

/// Escapes the three characters Slack's `mrkdwn` gives a meaning to (`&`, `<`, `>`), so that an agent name cannot
/// make a link or a mention (`<!channel>`). Slack documents exactly these three escapes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Up to `max` characters of bullet lines, then "…and N more".
fn bullets(n: &Notification, lines: &[AlertLine], max: usize) -> String {
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let line = format!("• {}\n", escape(&n.line_text(l)));
        if out.chars().count() + line.chars().count() > max {
            out.push_str(&format!("…and {} more\n", lines.len() - i));
            break;
        }
        out.push_str(&line);
    }
    out.trim_end().to_string()
}

/// The webhook body for `n`: `{"text": …, "blocks": [header, section…, context]}`.
pub fn message(n: &Notification) -> Value {
    let title = super::email::subject(n);
    let header: String = title.chars().take(HEADER_MAX_CHARS).collect();
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": header, "emoji": false},
    })];
    if !n.firing.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("*Firing*\n{}", bullets(n, &n.firing, SECTION_MAX_CHARS))},
        }));
    }
    if !n.resolved.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("*Resolved*\n{}", bullets(n, &n.resolved, SECTION_MAX_CHARS))},
        }));
    }
    let status = match n.status {
        NotificationStatus::Firing => "firing",
        NotificationStatus::Resolved => "resolved",
    };
    let mut context = format!(
        "{status} · severity {} · account {} ({})",
        super::pagerduty::severity(n.severity),
        escape(&n.account),
        escape(n.provider_label())
    );
    if let Some(url) = n.external_url.as_deref().filter(|u| u.starts_with("http")) {
        context.push_str(&format!(" · <{}|open the exporter>", escape(url)));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": context}],
    }));
    json!({ "text": escape(&title), "blocks": blocks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::test_notification;

    #[test]
    fn the_message_has_text_and_blocks_and_escapes_agent_names() {
        let n = test_notification("<!channel> & <https://evil.example|click>");
        let m = message(&n);
        assert_eq!(m["text"], "[FIRING:1] AgentOffline prod");
        let blocks = m["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        let body = blocks[1]["text"]["text"].as_str().unwrap();
        assert!(
            body.contains("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"),
            "{body}"
        );
        assert!(!body.contains("<!channel>"), "{body}");
        assert_eq!(blocks.last().unwrap()["type"], "context");
    }

    #[test]
    fn a_large_group_stays_inside_slacks_section_limit() {
        let mut n = test_notification("agent");
        let line = n.firing[0].clone();
        n.firing = (0..2000)
            .map(|i| AlertLine {
                agent_name: Some(format!("agent-{i}")),
                ..line.clone()
            })
            .collect();
        let m = message(&n);
        let body = m["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(
            body.chars().count() <= 3000,
            "{} chars",
            body.chars().count()
        );
        assert!(body.ends_with("more"), "{body}");
    }
}
