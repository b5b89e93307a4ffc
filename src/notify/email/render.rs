//! Renders notifications into multipart text and HTML messages, and builds the lettre messages for them and for
//! pre-rendered emails (the compliance report).
//!
//! Everything that came from upstream (agent names, ids, versions) is untrusted: its line breaks and other control
//! characters are folded into spaces in both parts (as on every other path), the HTML part is written with `maud`,
//! which escapes every value, and nothing upstream is put in a header. The subject is built from the
//! alert name and the account only, and CR, LF and other control characters are removed from it anyway.

use std::fmt::Write as _;

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use serde::{Deserialize, Serialize};

use maud::{DOCTYPE, Markup, html};

use crate::domain::catalog::fold;
use crate::domain::{
    AlertLine, AlertName, Notification, NotificationStatus, Severity, SourceProblem,
};

/// A message rendered ahead of time, as the compliance report is: the outbox stores it as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedEmail {
    /// The subject; control characters are removed again when the message is built.
    pub subject: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
    /// Plain addresses; empty means the channel's default recipients.
    pub to: Vec<String>,
    /// Optional attachments (the report's CSV).
    #[serde(default)]
    pub attachments: Vec<EmailAttachment>,
    /// A stable id for the `Message-ID` header (the report's outbox id), so a copy re-sent after a crash carries
    /// the same `Message-ID`; `None` lets lettre make a random one (`<uuid@hostname>`). Every message gets one.
    #[serde(default)]
    pub message_id: Option<String>,
}

/// One attachment of a [`RenderedEmail`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailAttachment {
    /// The file name the recipient sees.
    pub filename: String,
    /// A MIME type such as `text/csv; charset=utf-8`.
    pub content_type: String,
    /// The content, UTF-8 text.
    pub content: String,
}

/// A message that cannot be built. Retrying does not help, so the outbox drops it.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A recipient is not an email address.
    #[error("recipient {0:?} is not an email address")]
    Recipient(String),
    /// Neither the message nor the channel names a recipient.
    #[error("the message has no recipient and the channel has no default recipients")]
    NoRecipient,
    /// An attachment's content type does not parse.
    #[error("attachment {filename:?} has an invalid content type {content_type:?}")]
    ContentType {
        filename: String,
        content_type: String,
    },
    /// lettre refused to build the message.
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
}

pub(super) fn parse_mailbox(s: &str) -> Result<Mailbox, RenderError> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|_| RenderError::Recipient(s.to_string()))
}

fn recipients(to: &[String], default_to: &[Mailbox]) -> Result<Vec<Mailbox>, RenderError> {
    let list: Vec<Mailbox> = if to.is_empty() {
        default_to.to_vec()
    } else {
        to.iter()
            .map(|s| parse_mailbox(s))
            .collect::<Result<_, _>>()?
    };
    if list.is_empty() {
        return Err(RenderError::NoRecipient);
    }
    Ok(list)
}

/// The subject of a notification: `[FIRING:3] AgentTokenRotationOverdue prod-us`,
/// `[FIRING:5] AgentHeartbeatStale prod-us (4 muted)` or `[RESOLVED] AgentTokenRotationOverdue prod-us`, with
/// control characters removed. The count includes muted alerts the recipients were told about, which still fire;
/// `[RESOLVED]` appears when every alert they were told about resolved, with `(N still muted)` when alerts they
/// were never told about still fire muted (`[RESOLVED] AgentHeartbeatStale prod-us (3 still muted)`).
pub fn subject(n: &Notification) -> String {
    let s = match n.status {
        NotificationStatus::Firing => {
            let muted = if n.muted.is_empty() {
                String::new()
            } else {
                format!(" ({} muted)", n.muted.len())
            };
            format!(
                "[FIRING:{}] {} {}{muted}",
                n.firing.len() + n.muted.len(),
                n.alertname,
                n.account
            )
        }
        NotificationStatus::Resolved if n.still_muted > 0 => format!(
            "[RESOLVED] {} {} ({} still muted)",
            n.alertname, n.account, n.still_muted
        ),
        NotificationStatus::Resolved => format!("[RESOLVED] {} {}", n.alertname, n.account),
    };
    header_safe(&s)
}

/// Replaces every control character (CR, LF, TAB, ...) with a space and collapses runs of spaces, so that a value
/// can never start a new header line.
pub fn header_safe(s: &str) -> String {
    let replaced: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    replaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Returns `url` if and only if it is an absolute http or https URL, the only kind worth a link.
fn link_target(url: Option<&str>) -> Option<&str> {
    url.filter(|u| u.starts_with("http://") || u.starts_with("https://"))
}

fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// The colour of the band at the top of the HTML part: green once resolved, else by severity.
fn band_colour(n: &Notification) -> &'static str {
    match (n.status, n.severity) {
        (NotificationStatus::Resolved, _) => "#2e7d32",
        (_, Severity::Critical) => "#c62828",
        (_, Severity::Warning) => "#ef6c00",
        (_, Severity::Info) => "#1565c0",
    }
}

/// `1 agent`, `3 agents`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The one-line summary at the top of both parts, e.g. `Critical: 3 agents offline on prod-us (celigo); 1
/// resolved, 2 muted.` The rule's meaning in words, so a reader need not know the rule names.
pub fn summary_line(n: &Notification) -> String {
    let agents = n.firing.len() + n.muted.len();
    // Exhaustive on purpose: a new rule must say here what it means, it cannot fall through to a generic text.
    let what = match n.alertname {
        AlertName::AgentHeartbeatStale => {
            format!("{} without a recent heartbeat", count(agents, "agent"))
        }
        AlertName::AgentOffline => format!(
            "{} reported offline by the platform",
            count(agents, "agent")
        ),
        AlertName::AgentTokenRotationDue => {
            format!("{} due for token rotation", count(agents, "agent"))
        }
        AlertName::AgentTokenRotationOverdue => {
            format!(
                "{} with a token past the rotation policy",
                count(agents, "agent")
            )
        }
        AlertName::SourceDown => "polls failing".to_string(),
        AlertName::AgentVersionOutdated => {
            format!("{} on an outdated version", count(agents, "agent"))
        }
        AlertName::TestNotification => {
            format!("TestNotification: {} firing", count(agents, "alert"))
        }
    };
    match n.status {
        NotificationStatus::Resolved => format!(
            "Resolved: {} on account {} ({}) is over; {} resolved{}.",
            n.alertname,
            n.account,
            n.provider_label(),
            count(n.resolved.len(), "alert"),
            if n.still_muted > 0 {
                format!(", {} still muted", n.still_muted)
            } else {
                String::new()
            }
        ),
        NotificationStatus::Firing => {
            let severity = match n.severity {
                Severity::Info => "Info",
                Severity::Warning => "Warning",
                Severity::Critical => "Critical",
            };
            let mut extra = Vec::new();
            if !n.resolved.is_empty() {
                extra.push(format!("{} resolved", n.resolved.len()));
            }
            if !n.muted.is_empty() {
                extra.push(format!("{} muted", n.muted.len()));
            }
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!("; {}", extra.join(", "))
            };
            format!(
                "{severity}: {what} on account {} ({}){extra}.",
                n.account,
                n.provider_label()
            )
        }
    }
}

/// The sentence for a line: the engine's summary, or for notifications stored by an older version its value and
/// threshold.
fn sentence(l: &AlertLine) -> String {
    if l.summary.is_empty() {
        format!("{} / {}", l.value, l.threshold)
    } else {
        l.summary.clone()
    }
}

/// The text and HTML parts of a notification.
pub fn render_notification(n: &Notification) -> (String, String) {
    let summary = summary_line(n);
    let sections: [(&str, &Vec<AlertLine>); 3] = [
        ("Firing", &n.firing),
        ("Resolved since the last notice", &n.resolved),
        ("Muted (still firing, not repeated)", &n.muted),
    ];

    let mut text = String::new();
    let _ = writeln!(text, "{}\n", fold(&summary));
    if let Some(p) = &n.source_problem {
        for (k, v) in source_rows(p) {
            let _ = writeln!(text, "{k}: {}", fold(&v));
        }
        text.push('\n');
    }
    for (title, lines) in sections {
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(text, "{title}:");
        for l in lines.iter() {
            let _ = writeln!(text, "- {}", text_line(l));
        }
        text.push('\n');
    }
    let runbook = crate::domain::catalog::definition(n.alertname.as_str()).map(|d| d.runbook);
    if let Some(r) = runbook {
        let _ = writeln!(text, "Runbook: {r}\n");
    }
    if let Some(url) = link_target(n.external_url.as_deref()) {
        let _ = writeln!(text, "Exporter: {url}");
    }
    let _ = writeln!(text, "Group: {}", fold(&n.group_key));

    let html = render_html(n, &summary, &sections, runbook);
    (text, html)
}

/// The HTML part, with `maud`: every value is escaped unless marked otherwise, and nothing here is.
fn render_html(
    n: &Notification,
    summary: &str,
    sections: &[(&str, &Vec<AlertLine>)],
    runbook: Option<&str>,
) -> String {
    let exporter = link_target(n.external_url.as_deref());
    let markup = html! {
        (DOCTYPE)
        html {
            head { meta charset="utf-8"; }
            body style="font-family: sans-serif" {
                div style={ "background: " (band_colour(n)) "; color: #ffffff; padding: 10px 14px; font-weight: bold" } {
                    (fold(summary))
                }
                @if let Some(p) = &n.source_problem {
                    table cellpadding="4" cellspacing="0" style="margin-top: 8px" {
                        @for (k, v) in source_rows(p) {
                            tr { th align="left" { (k) } td { (fold(&v)) } }
                        }
                    }
                }
                @for (title, lines) in sections {
                    @if !lines.is_empty() {
                        h3 { (title) }
                        table border="1" cellpadding="4" cellspacing="0" style="border-collapse: collapse" {
                            tr { th { "Agent" } th { "ID" } th { "What" } th { "Version" } th { "Since" } }
                            @for l in lines.iter() {
                                (html_row(l))
                            }
                        }
                    }
                }
                @if let Some(r) = runbook {
                    p { strong { "Runbook:" } " " (r) }
                }
                @if let Some(u) = exporter {
                    p { a href=(u) { "Open the exporter" } " (" (u) ")" }
                }
                p style="color: #666" { "Group: " (fold(&n.group_key)) }
            }
        }
    };
    markup.into_string()
}

/// One agent's row of the HTML part.
fn html_row(l: &AlertLine) -> Markup {
    let mut since = format_time(l.fired_at.unwrap_or(l.since));
    if let Some(r) = l.resolved_at {
        since = format!("{since}, resolved {}", format_time(r));
    }
    let name = fold(l.agent_name.as_deref().unwrap_or("the account itself"));
    html! {
        tr {
            td {
                @if let Some(u) = link_target(l.link.as_deref()) {
                    a href=(u) { (name) }
                } @else {
                    (name)
                }
            }
            td { (fold(l.agent_id.as_deref().unwrap_or("-"))) }
            td {
                @if l.new { strong { "NEW" } " " }
                (fold(&sentence(l)))
                @if let Some(by) = &l.muted_by { " (" (fold(by)) ")" }
            }
            td { (fold(l.version.as_deref().unwrap_or("-"))) }
            td { (since) }
        }
    }
}

/// The rows that say what failed in a `SourceDown` notice, in reading order.
fn source_rows(p: &SourceProblem) -> Vec<(&'static str, String)> {
    let mut rows = vec![("Reason", p.reason.clone())];
    if !p.message.is_empty() {
        rows.push(("Last error", p.message.clone()));
    }
    if let Some(u) = &p.url {
        rows.push(("URL", u.clone()));
    }
    if let Some(t) = p.failing_since {
        rows.push(("Failing since", format_time(t)));
    }
    rows.push((
        "Last good poll",
        p.last_success
            .map_or("never since the exporter started".to_string(), format_time),
    ));
    rows.push((
        "Agents in the last good snapshot",
        p.agents_in_last_snapshot
            .map_or("none (no poll succeeded yet)".to_string(), |n| {
                n.to_string()
            }),
    ));
    rows
}

fn text_line(l: &AlertLine) -> String {
    let who = match (&l.agent_name, &l.agent_id) {
        (Some(name), Some(id)) => format!("{} ({})", fold(name), fold(id)),
        (Some(name), None) => fold(name),
        (None, Some(id)) => fold(id),
        (None, None) => "the account itself".to_string(),
    };
    let new = if l.new { "NEW: " } else { "" };
    let mut s = format!("{new}{who}: {}", fold(&sentence(l)));
    if let Some(by) = &l.muted_by {
        let _ = write!(s, " ({})", fold(by));
    }
    if let Some(v) = &l.version {
        let _ = write!(s, ", version {}", fold(v));
    }
    let _ = write!(s, ", since {}", format_time(l.fired_at.unwrap_or(l.since)));
    if let Some(r) = l.resolved_at {
        let _ = write!(s, ", resolved {}", format_time(r));
    }
    if let Some(u) = link_target(l.link.as_deref()) {
        let _ = write!(s, " <{u}>");
    }
    s
}

/// Builds the message for a notification: multipart text and HTML, addressed to `n.to` or else `default_to`.
pub fn build_notification(
    n: &Notification,
    from: &Mailbox,
    default_to: &[Mailbox],
) -> Result<Message, RenderError> {
    let (text, html) = render_notification(n);
    let mut b = Message::builder()
        .from(from.clone())
        .subject(subject(n))
        .date(n.created_at.into())
        .message_id(Some(message_id(&n.id, from)));
    for r in recipients(&n.to, default_to)? {
        b = b.to(r);
    }
    Ok(b.multipart(MultiPart::alternative_plain_html(text, html))?)
}

/// Builds the message for a pre-rendered email.
pub fn build_rendered(
    r: &RenderedEmail,
    from: &Mailbox,
    default_to: &[Mailbox],
) -> Result<Message, RenderError> {
    let mut b = Message::builder()
        .from(from.clone())
        .subject(header_safe(&r.subject))
        .date_now()
        .message_id(r.message_id.as_deref().map(|id| message_id(id, from)));
    for m in recipients(&r.to, default_to)? {
        b = b.to(m);
    }
    let body = MultiPart::alternative_plain_html(r.text.clone(), r.html.clone());
    if r.attachments.is_empty() {
        return Ok(b.multipart(body)?);
    }
    let mut mixed = MultiPart::mixed().multipart(body);
    for a in &r.attachments {
        let ct = ContentType::parse(&a.content_type).map_err(|_| RenderError::ContentType {
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
        })?;
        let part: SinglePart =
            Attachment::new(header_safe(&a.filename)).body(a.content.clone(), ct);
        mixed = mixed.singlepart(part);
    }
    Ok(b.multipart(mixed)?)
}

/// A `Message-ID` derived from the notification id, so that a message re-sent after a crash carries the same id
/// and mail clients can fold the duplicate.
fn message_id(id: &str, from: &Mailbox) -> String {
    let domain = from.email.domain();
    let safe: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    format!("<{safe}@{domain}>")
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::domain::Severity;

    fn notification(name: &str) -> Notification {
        Notification {
            id: "0001-abcd-1".into(),
            group_key: "AgentTokenRotationOverdue/prod-us".into(),
            status: NotificationStatus::Firing,
            alertname: crate::domain::AlertName::AgentTokenRotationOverdue,
            severity: Severity::Critical,
            account: "prod-us".into(),
            provider: Some(crate::domain::Provider::Celigo),
            to: vec!["ops@example.com".into()],
            receivers: vec![],
            firing: vec![AlertLine {
                agent_id: Some("a1".into()),
                agent_name: Some(name.into()),
                version: Some("1.2.3".into()),
                value: "97 days".into(),
                threshold: "90 days".into(),
                since: Timestamp::from_second(1_700_000_000).unwrap(),
                resolved_at: None,
                ..AlertLine::default()
            }],
            resolved: vec![],
            created_at: Timestamp::from_second(1_700_000_100).unwrap(),
            external_url: Some("http://exporter.example.com:9877".into()),
            muted: vec![],
            still_muted: 0,
            source_problem: None,
        }
    }

    #[test]
    fn the_subject_counts_firing_alerts_and_names_rule_and_account() {
        let mut n = notification("x");
        assert_eq!(subject(&n), "[FIRING:1] AgentTokenRotationOverdue prod-us");
        n.status = NotificationStatus::Resolved;
        assert_eq!(subject(&n), "[RESOLVED] AgentTokenRotationOverdue prod-us");
        n.account = "evil\r\nBcc: victim@example.com".into();
        let s = subject(&n);
        assert!(
            !s.contains('\r') && !s.contains('\n'),
            "subject kept a line break: {s:?}"
        );
    }

    #[test]
    fn upstream_strings_are_escaped_in_html_and_line_breaks_folded_in_both_parts() {
        let (text, html) = render_notification(&notification(
            "<script>alert(1)</script>\r\nBcc: x@y.z & \"q\"",
        ));
        assert!(!html.contains("<script>"), "raw markup in HTML:\n{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt; Bcc: x@y.z &amp; &quot;q&quot;"),
            "HTML:\n{html}"
        );
        assert!(
            text.contains("<script>alert(1)</script> Bcc: x@y.z"),
            "text did not fold the line break:\n{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("Bcc:")),
            "a forged line in text:\n{text}"
        );
    }

    #[test]
    fn a_name_with_line_breaks_cannot_add_headers_to_the_built_message() {
        let from: Mailbox = "Alerts <alerts@example.com>".parse().unwrap();
        let mut n = notification("evil\r\nBcc: victim@example.com\r\n\r\nbody");
        n.account = "prod\r\nX-Injected: yes".into();
        let msg = build_notification(&n, &from, &[]).unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        assert!(
            !head
                .lines()
                .any(|l| l.starts_with("Bcc:") || l.starts_with("X-Injected:")),
            "header injection:\n{head}"
        );
        assert_eq!(
            msg.envelope().to().len(),
            1,
            "envelope: {:?}",
            msg.envelope()
        );
    }

    #[test]
    fn a_bad_recipient_is_a_render_error_and_no_recipient_falls_back_to_the_default() {
        let from: Mailbox = "alerts@example.com".parse().unwrap();
        let mut n = notification("a");
        n.to = vec!["not an address".into()];
        assert!(matches!(
            build_notification(&n, &from, &[]),
            Err(RenderError::Recipient(_))
        ));
        n.to = vec![];
        assert!(matches!(
            build_notification(&n, &from, &[]),
            Err(RenderError::NoRecipient)
        ));
        let msg = build_notification(&n, &from, std::slice::from_ref(&from)).unwrap();
        assert_eq!(msg.envelope().to()[0].to_string(), "alerts@example.com");
    }

    #[test]
    fn a_group_with_muted_alerts_counts_them_and_says_what_mutes_them() {
        let mut n = notification("edge-a");
        n.firing[0].summary = "token 97 days old; policy 90 days".into();
        n.firing[0].link = Some("http://exporter.example.com:9877/#agent-prod-us-a1".into());
        n.muted = vec![AlertLine {
            agent_id: Some("a2".into()),
            agent_name: Some("edge-b".into()),
            summary: "last heartbeat 3 h ago; limit 10 min".into(),
            muted_by: Some("inhibited by AgentOffline".into()),
            ..AlertLine::default()
        }];
        assert_eq!(
            subject(&n),
            "[FIRING:2] AgentTokenRotationOverdue prod-us (1 muted)"
        );
        let (text, html) = render_notification(&n);
        assert!(
            text.starts_with(
                "Critical: 2 agents with a token past the rotation policy on account prod-us (celigo); 1 muted.\n"
            ),
            "text:\n{text}"
        );
        assert!(
            text.contains(
                "edge-b (a2): last heartbeat 3 h ago; limit 10 min (inhibited by AgentOffline)"
            ),
            "text:\n{text}"
        );
        assert!(html.contains("background: #c62828"), "no red band:\n{html}");
        assert!(
            html.contains(
                "<a href=\"http://exporter.example.com:9877/#agent-prod-us-a1\">edge-a</a>"
            ),
            "no agent link:\n{html}"
        );
        assert!(
            html.contains("<td>token 97 days old; policy 90 days</td>"),
            "no sentence:\n{html}"
        );
        assert!(!html.contains("(threshold"), "old wording:\n{html}");
    }

    #[test]
    fn a_source_down_mail_says_what_failed() {
        let mut n = notification("x");
        n.alertname = crate::domain::AlertName::SourceDown;
        n.firing = vec![AlertLine {
            summary: "polls failing for 40 s (connect); alert after 30 s".into(),
            since: Timestamp::from_second(1_700_000_000).unwrap(),
            ..AlertLine::default()
        }];
        n.source_problem = Some(Box::new(SourceProblem {
            reason: "connect".into(),
            message:
                "https://api.example/v1/agents: cannot connect after 3 attempts: connection refused"
                    .into(),
            url: Some("https://api.example/v1/agents".into()),
            failing_since: Some(Timestamp::from_second(1_700_000_000).unwrap()),
            last_success: None,
            agents_in_last_snapshot: Some(25),
        }));
        let (text, html) = render_notification(&n);
        for want in [
            "Critical: polls failing on account prod-us (celigo).",
            "Reason: connect",
            "Last error: https://api.example/v1/agents: cannot connect after 3 attempts: connection refused",
            "URL: https://api.example/v1/agents",
            "Failing since: 2023-11-14 22:13 UTC",
            "Agents in the last good snapshot: 25",
            "the account itself: polls failing for 40 s (connect); alert after 30 s",
        ] {
            assert!(text.contains(want), "text lacks {want:?}:\n{text}");
        }
        assert!(
            html.contains("<th align=\"left\">URL</th><td>https://api.example/v1/agents</td>"),
            "html:\n{html}"
        );
    }

    #[test]
    fn a_notice_whose_told_alerts_all_resolved_says_resolved_and_how_many_still_muted() {
        let mut n = notification("edge-1");
        n.status = NotificationStatus::Resolved;
        n.resolved = std::mem::take(&mut n.firing);
        n.still_muted = 3;
        assert_eq!(
            subject(&n),
            "[RESOLVED] AgentTokenRotationOverdue prod-us (3 still muted)",
            "never [FIRING:0]"
        );
        assert!(
            summary_line(&n).ends_with("1 alert resolved, 3 still muted."),
            "{}",
            summary_line(&n)
        );
    }

    #[test]
    fn every_message_has_a_message_id() {
        let from: Mailbox = "alerts@example.com".parse().unwrap();
        let r = RenderedEmail {
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
            to: vec!["ops@example.com".into()],
            attachments: vec![],
            message_id: None,
        };
        let raw = |m: Message| String::from_utf8(m.formatted()).unwrap();
        let random = raw(build_rendered(&r, &from, &[]).unwrap());
        assert!(random.contains("Message-ID: <"), "message:\n{random}");
        let stable = raw(build_rendered(
            &RenderedEmail {
                message_id: Some("report-token-compliance-1".into()),
                ..r
            },
            &from,
            &[],
        )
        .unwrap());
        assert!(
            stable.contains("Message-ID: <report-token-compliance-1@example.com>"),
            "message:\n{stable}"
        );
    }
}
