//! The Microsoft Teams channel: one POST per notification to a Teams Workflows webhook ("Post to a channel when a
//! webhook request is received"), carrying an Adaptive Card as Teams documents it:
//! `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","content":{…}}]}`.
//!
//! Untrusted text (agent names, versions) goes into `TextRun`s of `RichTextBlock`s, which Teams shows as plain text:
//! a `TextBlock` would read its text as Markdown, and an agent name could then become a link. The workflow URL
//! carries its signature (`sig=…`) and is read from `webhook_url_file`; it is a secret.

use crate::notify::Told as _;
use serde_json::{Value, json};

use super::{AlertLine, Notification, NotificationStatus, Severity};

/// The most agents listed per section; a Teams message is capped at about 28 KB, and a card with hundreds of rows is
/// unreadable anyway. The rest are counted in an "…and N more" line.
pub const MAX_LINES: usize = 50;

/// A `RichTextBlock` with one plain `TextRun`.
fn plain(text: &str, extra: Value) -> Value {
    let mut run = json!({"type": "TextRun", "text": text});
    if let (Some(run), Some(extra)) = (run.as_object_mut(), extra.as_object()) {
        run.extend(extra.clone());
    }
    json!({"type": "RichTextBlock", "inlines": [run]})
}

fn section(n: &Notification, title: &str, lines: &[AlertLine]) -> Vec<Value> {
    let mut text: Vec<String> = lines
        .iter()
        .take(MAX_LINES)
        .map(|l| format!("• {}", n.line_text(l)))
        .collect();
    if lines.len() > MAX_LINES {
        text.push(format!("…and {} more", lines.len() - MAX_LINES));
    }
    vec![
        plain(title, json!({"weight": "Bolder"})),
        plain(&text.join("\n"), json!({})),
    ]
}

/// The webhook body for `n`: a message with one Adaptive Card attachment.
pub fn message(n: &Notification) -> Value {
    // Adaptive Card colours: red for a firing critical, yellow for other firing, green once resolved.
    let color = match (n.status, n.severity) {
        (NotificationStatus::Resolved, _) => "Good",
        (NotificationStatus::Firing, Severity::Critical) => "Attention",
        (NotificationStatus::Firing, _) => "Warning",
    };
    let mut body = vec![
        plain(
            &super::email::subject(n),
            json!({"weight": "Bolder", "size": "Medium", "color": color}),
        ),
        plain(
            &format!(
                "severity {} · account {} ({})",
                super::pagerduty::severity(n.severity),
                n.account,
                n.provider_label()
            ),
            json!({"isSubtle": true}),
        ),
    ];
    if !n.firing.is_empty() {
        body.extend(section(n, "Firing", &n.firing));
    }
    if !n.resolved.is_empty() {
        body.extend(section(n, "Resolved", &n.resolved));
    }
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    });
    if let Some(url) = n
        .external_url
        .as_deref()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
    {
        content["actions"] =
            json!([{"type": "Action.OpenUrl", "title": "Open the exporter", "url": url}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::test_notification;

    #[test]
    fn the_message_is_one_adaptive_card_with_agent_names_as_plain_text_runs() {
        let m = message(&test_notification("[click](https://evil.example) **bold**"));
        assert_eq!(m["type"], "message");
        let a = &m["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        let body = a["content"]["body"].as_array().unwrap();
        assert!(
            body.iter().all(|b| b["type"] == "RichTextBlock"),
            "{body:?}"
        );
        assert_eq!(body[0]["inlines"][0]["color"], "Attention");
        let agents = body[3]["inlines"][0]["text"].as_str().unwrap();
        assert!(
            agents.contains("[click](https://evil.example) **bold**"),
            "{agents}"
        );
        assert_eq!(
            a["content"]["actions"][0]["url"],
            "https://exporter.example.com"
        );
    }
}
