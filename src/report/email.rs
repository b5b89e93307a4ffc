//! The report as an email: the table as the text part, an HTML table coloured by status, and the CSV attached.

use lettre::message::Mailbox;
use maud::{DOCTYPE, html};

use super::build::{Report, TokenStatus};
use super::render::{date, format_age, render_csv, render_table, rotated_text};
use crate::config::email::EmailConfig;
use crate::notify::email::{DeliveryError, EmailAttachment, EmailChannel, RenderedEmail};
use crate::untrusted::text_safe;

/// The HTML part, with `maud`, which escapes every value; upstream strings also show control characters as
/// escapes, as the text table does.
fn render_html(report: &Report) -> String {
    let markup = html! {
        (DOCTYPE)
        html {
            head { meta charset="utf-8"; }
            body style="font-family: sans-serif" {
                h2 { "Token rotation compliance" }
                p {
                    (report.summary_line()) " (max age " (format_age(report.max_age_seconds)) ", due soon "
                    (format_age(report.warn_before_seconds)) " before; generated "
                    (report.generated_at.strftime("%Y-%m-%d %H:%M UTC").to_string()) ")."
                }
                @if !report.undated.is_empty() {
                    ul {
                        @for u in &report.undated { li { (text_safe(&u.sentence())) } }
                    }
                }
                @if !report.agents.is_empty() {
                    table border="1" cellpadding="4" cellspacing="0" style="border-collapse: collapse" {
                        tr {
                            th { "Status" } th { "Account" } th { "Agent" } th { "ID" } th { "Token age" }
                            th { "Last rotation" } th { "Due" }
                        }
                        @for r in &report.agents {
                            tr style={ "background: " (colour(r.status)) } {
                                td { (r.status) }
                                td { (text_safe(&r.account)) }
                                td { (text_safe(&r.agent_name)) }
                                td { (text_safe(&r.agent_id)) }
                                td { (format_age(r.token_age_seconds)) }
                                td { (rotated_text(r)) }
                                td { (date(r.due_at)) }
                            }
                        }
                    }
                    p { "The full list is attached as CSV." }
                }
            }
        }
    };
    markup.into_string()
}

/// A row's background: red for overdue, yellow for due soon.
fn colour(status: TokenStatus) -> &'static str {
    match status {
        TokenStatus::Overdue => "#f8d7da",
        TokenStatus::DueSoon => "#fff3cd",
        TokenStatus::Ok => "#ffffff",
    }
}

/// The report as an email to `to` (plain addresses; empty means the channel's default recipients), with the
/// table as text, an HTML table, and the CSV attached as `token-compliance-YYYY-MM-DD.csv`.
pub fn email(report: &Report, to: &[Mailbox]) -> RenderedEmail {
    let s = &report.summary;
    let subject = if s.agents == 0 {
        "[REPORT] Token rotation compliance: no agents".to_string()
    } else {
        format!(
            "[REPORT] Token rotation compliance: {} overdue, {} due soon of {} agents",
            s.overdue, s.due_soon, s.agents
        )
    };
    RenderedEmail {
        subject,
        text: render_table(report),
        html: render_html(report),
        to: to.iter().map(|m| m.email.to_string()).collect(),
        attachments: vec![EmailAttachment {
            filename: format!(
                "token-compliance-{}.csv",
                report.generated_at.strftime("%Y-%m-%d")
            ),
            content_type: "text/csv; charset=utf-8".to_string(),
            content: render_csv(report),
        }],
        // `report --send`: lettre makes one. The scheduler sets the report's outbox id instead.
        message_id: None,
    }
}

/// Mails the report now, directly over SMTP (for `report --send`): the command reports the exact failing step
/// instead of leaving the message in an outbox no process delivers. Recipients: `to`, or `alerting.email.to` when
/// `to` is empty.
pub async fn send_now(
    report: &Report,
    to: &[Mailbox],
    cfg: &EmailConfig,
) -> Result<(), DeliveryError> {
    EmailChannel::smtp(cfg)
        .send_rendered(&email(report, to))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reports::TokenPolicy;
    use crate::report::build::build;
    use crate::report::build::tests::{agent, now, source};
    use crate::report::render::{ReportFormat, render};

    #[test]
    fn an_empty_fleet_gets_a_report_that_says_so() {
        let r = build(&[source("prod-us", vec![])], TokenPolicy::default(), now());
        let t = render(ReportFormat::Table, &r);
        assert!(t.contains("No agents: the fleet is empty"), "table:\n{t}");
        let e = email(&r, &[]);
        assert_eq!(e.subject, "[REPORT] Token rotation compliance: no agents");
        assert!(e.html.contains("No agents"), "html:\n{}", e.html);
        assert_eq!(render(ReportFormat::Csv, &r).lines().count(), 1);
    }

    #[test]
    fn the_email_escapes_names_in_html_and_attaches_the_csv() {
        let r = build(
            &[source(
                "prod-us",
                vec![agent("x", "<b>bold</b>", Some(100))],
            )],
            TokenPolicy::default(),
            now(),
        );
        let e = email(&r, &["sec@example.com".parse().unwrap()]);
        assert!(
            e.html.contains("&lt;b&gt;bold&lt;/b&gt;") && !e.html.contains("<b>bold"),
            "html:\n{}",
            e.html
        );
        assert_eq!(e.to, vec!["sec@example.com"]);
        assert_eq!(e.attachments.len(), 1);
        assert!(e.attachments[0].filename.ends_with(".csv"));
        assert!(e.subject.contains("1 overdue"), "subject: {}", e.subject);
    }
}
