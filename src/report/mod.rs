//! The token-age compliance report: every agent with its token age, last rotation, due date and status (ok, due
//! soon, overdue), most urgent first, as a table, CSV or JSON, and as a scheduled email with the CSV attached.
//!
//! [`build`] is pure: it reads the sources' statuses and `now`, so `report --config FILE` and the scheduler produce
//! the same report. [`run_schedule`] fires on a 5-field cron expression read in a time zone and hands the email
//! to the outbox, so an SMTP outage delays the report but never loses it. The next fire time is always computed in
//! the zone from the wall clock (with croner's fold handling), so `0 9 * * MON` stays at 09:00 local across DST
//! changes, and a time that does not exist on the spring-forward day, or exists twice on the fall-back day, fires
//! once.

use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::{Timestamp, ToSpan as _};
use lettre::message::Mailbox;
use serde::Serialize;
use tokio::sync::watch;

use crate::model::TokenDateSource;
use crate::notify::NotifyError;
use crate::notify::config::{EmailConfig, TokenComplianceConfig, TokenPolicy};
use crate::notify::email::{
    DeliveryError, EmailAttachment, EmailChannel, RenderedEmail, html_text, text_safe,
};
use crate::notify::outbox::{Outbox, Payload};
use crate::status::{Registry, SourceStatus};

/// How `report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned columns for a terminal.
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON document.
    Json,
}

impl FromStr for ReportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<ReportFormat, String> {
        match s {
            "table" => Ok(ReportFormat::Table),
            "csv" => Ok(ReportFormat::Csv),
            "json" => Ok(ReportFormat::Json),
            _ => Err(format!(
                "unknown report format {s:?}; use table, csv or json"
            )),
        }
    }
}

/// Where one token stands against the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Older than `max_age`.
    Overdue,
    /// Older than `max_age - warn_before`.
    DueSoon,
    /// The provider exposes no rotation or creation date: compliance cannot be shown, which auditors want to see.
    Unknown,
    /// Younger than `max_age - warn_before`.
    Ok,
}

impl TokenStatus {
    /// The spelling used in every format.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Overdue => "overdue",
            TokenStatus::DueSoon => "due soon",
            TokenStatus::Unknown => "unknown",
            TokenStatus::Ok => "ok",
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One agent's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    pub status: TokenStatus,
    /// The source name (`account` label).
    pub account: String,
    pub provider: String,
    pub agent_id: String,
    /// Untrusted upstream text; every format escapes it its own way.
    pub agent_name: String,
    /// Whole seconds since the last rotation; `None` when unknown. Negative ages (clock skew) count as zero.
    pub token_age_seconds: Option<u64>,
    /// When the token was last rotated.
    pub last_rotated: Option<Timestamp>,
    /// True when `last_rotated` is the agent's creation time because the platform recorded no rotation.
    pub rotation_date_is_creation: bool,
    /// `last_rotated + max_age`.
    pub due_at: Option<Timestamp>,
}

/// One source's contribution, so that a source without data is not mistaken for an empty fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportSource {
    pub name: String,
    /// Whether the last poll succeeded.
    pub up: bool,
    /// Whether any agent list (even an old one) is known; `false` means this source's agents are missing.
    pub has_data: bool,
    /// Agents counted from this source.
    pub agents: usize,
}

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub agents: usize,
    pub overdue: usize,
    pub due_soon: usize,
    pub unknown: usize,
    pub ok: usize,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub generated_at: Timestamp,
    /// The policy, in seconds.
    pub max_age_seconds: u64,
    pub warn_before_seconds: u64,
    pub summary: Summary,
    pub sources: Vec<ReportSource>,
    /// Most urgent first: overdue, due soon, unknown, ok; older tokens first within each.
    pub agents: Vec<ReportRow>,
}

/// Builds the report from the sources' current statuses (as [`Registry::snapshot`] returns them) at `now`.
pub fn build(sources: &[Arc<SourceStatus>], policy: TokenPolicy, now: Timestamp) -> Report {
    let max_age = policy.max_age.as_secs();
    let warn_at = policy.max_age.saturating_sub(policy.warn_before).as_secs();
    let mut rows = Vec::new();
    let mut report_sources = Vec::new();
    for s in sources {
        let agents = s
            .agents
            .as_ref()
            .map(|l| l.agents.as_slice())
            .unwrap_or(&[]);
        report_sources.push(ReportSource {
            name: s.name.clone(),
            up: s.up,
            has_data: s.agents.is_some(),
            agents: agents.len(),
        });
        for a in agents {
            let age = a
                .token_rotated
                .map(|t| now.duration_since(t).as_secs().max(0) as u64);
            let status = match age {
                None => TokenStatus::Unknown,
                Some(age) if age > max_age => TokenStatus::Overdue,
                Some(age) if age > warn_at => TokenStatus::DueSoon,
                Some(_) => TokenStatus::Ok,
            };
            rows.push(ReportRow {
                status,
                account: s.name.clone(),
                provider: s.provider.as_str().to_string(),
                agent_id: a.id.clone(),
                agent_name: a.name.clone(),
                token_age_seconds: age,
                last_rotated: a.token_rotated,
                rotation_date_is_creation: a.token_rotated.is_some()
                    && a.token_rotated_source == TokenDateSource::Created,
                due_at: a
                    .token_rotated
                    .and_then(|t| t.checked_add((max_age as i64).seconds()).ok()),
            });
        }
    }
    rows.sort_by(|a, b| {
        a.status
            .cmp(&b.status)
            .then(b.token_age_seconds.cmp(&a.token_age_seconds))
            .then_with(|| a.account.cmp(&b.account))
            .then_with(|| a.agent_name.cmp(&b.agent_name))
            .then_with(|| a.agent_id.cmp(&b.agent_id))
    });
    let mut summary = Summary {
        agents: rows.len(),
        ..Summary::default()
    };
    for r in &rows {
        match r.status {
            TokenStatus::Overdue => summary.overdue += 1,
            TokenStatus::DueSoon => summary.due_soon += 1,
            TokenStatus::Unknown => summary.unknown += 1,
            TokenStatus::Ok => summary.ok += 1,
        }
    }
    Report {
        generated_at: now,
        max_age_seconds: max_age,
        warn_before_seconds: policy.warn_before.as_secs(),
        summary,
        sources: report_sources,
        agents: rows,
    }
}

impl Report {
    /// One sentence: `12 agents: 2 overdue, 3 due soon, 7 ok.`, or what an empty or incomplete fleet means.
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let missing: Vec<&str> = self
            .sources
            .iter()
            .filter(|x| !x.has_data)
            .map(|x| x.name.as_str())
            .collect();
        let mut line = if s.agents == 0 {
            "No agents: the fleet is empty, so there is nothing to rotate.".to_string()
        } else {
            let mut parts = vec![
                format!("{} overdue", s.overdue),
                format!("{} due soon", s.due_soon),
            ];
            if s.unknown > 0 {
                parts.push(format!("{} unknown", s.unknown));
            }
            parts.push(format!("{} ok", s.ok));
            format!(
                "{} agent{}: {}.",
                s.agents,
                if s.agents == 1 { "" } else { "s" },
                parts.join(", ")
            )
        };
        if !missing.is_empty() {
            let _ = write!(
                line,
                " Incomplete: no data from {} (never polled successfully).",
                missing.join(", ")
            );
        }
        line
    }
}

/// An age in whole seconds, for people (`97d 3h`).
fn format_age(seconds: u64) -> String {
    crate::humanize::duration(std::time::Duration::from_secs(seconds))
}

fn date(t: Option<Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "-".to_string())
}

fn rotated_text(r: &ReportRow) -> String {
    let d = date(r.last_rotated);
    if r.rotation_date_is_creation {
        format!("{d} (created)")
    } else {
        d
    }
}

/// Renders the report in `format`. Every upstream string is made safe for the format: control characters escaped
/// in the table, quoted (and guarded against spreadsheet formulas) in CSV, JSON-escaped in JSON.
pub fn render(format: ReportFormat, report: &Report) -> String {
    match format {
        ReportFormat::Table => render_table(report),
        ReportFormat::Csv => render_csv(report),
        ReportFormat::Json => {
            let mut s = serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            s.push('\n');
            s
        }
    }
}

fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Token rotation compliance at {} (max age {}, due soon {} before)",
        report.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        format_age(report.max_age_seconds),
        format_age(report.warn_before_seconds)
    );
    let _ = writeln!(out, "{}", report.summary_line());
    if report.agents.is_empty() {
        return out;
    }
    out.push('\n');
    let header = [
        "STATUS",
        "ACCOUNT",
        "AGENT",
        "ID",
        "TOKEN AGE",
        "LAST ROTATION",
        "DUE",
    ];
    let rows: Vec<[String; 7]> = report
        .agents
        .iter()
        .map(|r| {
            [
                r.status.to_string(),
                text_safe(&r.account),
                text_safe(&r.agent_name),
                text_safe(&r.agent_id),
                r.token_age_seconds
                    .map(format_age)
                    .unwrap_or_else(|| "-".into()),
                rotated_text(r),
                date(r.due_at),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = w - cell.chars().count();
            l.push_str(cell);
            if i + 1 < cells.len() {
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        l
    };
    let _ = writeln!(out, "{}", line(&header.map(String::from)));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row));
    }
    out
}

/// Quotes a CSV field (RFC 4180) and prefixes `'` to a value a spreadsheet would run as a formula.
fn csv_field(s: &str) -> String {
    let guarded = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) || guarded != guarded.trim() {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

fn render_csv(report: &Report) -> String {
    let mut out = String::from(
        "status,account,provider,agent_id,agent_name,token_age_seconds,token_age,last_rotated,rotation_date_is_creation,due_at\r\n",
    );
    for r in &report.agents {
        let fields = [
            r.status.to_string(),
            r.account.clone(),
            r.provider.clone(),
            r.agent_id.clone(),
            r.agent_name.clone(),
            r.token_age_seconds
                .map(|s| s.to_string())
                .unwrap_or_default(),
            r.token_age_seconds.map(format_age).unwrap_or_default(),
            r.last_rotated.map(|t| t.to_string()).unwrap_or_default(),
            r.rotation_date_is_creation.to_string(),
            r.due_at.map(|t| t.to_string()).unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn render_html(report: &Report) -> String {
    let mut h = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body style=\"font-family: sans-serif\">\n",
    );
    let _ = writeln!(
        h,
        "<h2>Token rotation compliance</h2>\n<p>{} (max age {}, due soon {} before; generated {}).</p>",
        crate::html::escape(&report.summary_line()),
        format_age(report.max_age_seconds),
        format_age(report.warn_before_seconds),
        report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    );
    if !report.agents.is_empty() {
        h.push_str(
            "<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\" style=\"border-collapse: collapse\">\n\
             <tr><th>Status</th><th>Account</th><th>Agent</th><th>ID</th><th>Token age</th><th>Last rotation</th>\
             <th>Due</th></tr>\n",
        );
        for r in &report.agents {
            let color = match r.status {
                TokenStatus::Overdue => "#f8d7da",
                TokenStatus::DueSoon => "#fff3cd",
                TokenStatus::Unknown => "#e2e3e5",
                TokenStatus::Ok => "#ffffff",
            };
            let _ = writeln!(
                h,
                "<tr style=\"background: {color}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td></tr>",
                r.status,
                html_text(&r.account),
                html_text(&r.agent_name),
                html_text(&r.agent_id),
                r.token_age_seconds
                    .map(format_age)
                    .unwrap_or_else(|| "-".into()),
                crate::html::escape(&rotated_text(r)),
                date(r.due_at),
            );
        }
        h.push_str("</table>\n<p>The full list is attached as CSV.</p>\n");
    }
    h.push_str("</body></html>\n");
    h
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

/// The first fire time strictly after `after`, computed in the schedule's zone; `None` if the expression never
/// matches again (croner's search horizon).
pub fn next_fire(cfg: &TokenComplianceConfig, after: Timestamp) -> Option<Timestamp> {
    let zoned = after.to_zoned(cfg.timezone.clone());
    cfg.schedule
        .find_next_occurrence(&zoned, false)
        .ok()
        .map(|z| z.timestamp())
}

/// The outbox id of the report due at `fire_time`: the same fire time always gives the same id, so a restart in
/// the same minute cannot send it twice.
pub fn report_id(fire_time: Timestamp) -> String {
    format!("report-token-compliance-{}", fire_time.as_second())
}

/// Builds the report for `fire_time` and stores it in the outbox. Returns `Ok(false)` if and only if that fire
/// time's report was already queued or sent. One iteration of [`run_schedule`], callable from tests.
pub fn enqueue_report(
    cfg: &TokenComplianceConfig,
    registry: &Registry,
    outbox: &Outbox,
    fire_time: Timestamp,
) -> Result<bool, NotifyError> {
    let report = build(&registry.snapshot(), cfg.policy, fire_time);
    outbox.enqueue_payload(
        &report_id(fire_time),
        Payload::Email(email(&report, &cfg.to)),
    )
}

/// The longest single sleep: waking each minute keeps the schedule on the wall clock when the monotonic clock and
/// the wall clock drift apart (suspend, NTP steps).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// How late a missed report is still sent at start-up: a process that was down at 09:00 and is back by the
/// afternoon sends that morning's report; one back the next day waits for the next fire time.
pub const CATCH_UP: Duration = Duration::from_secs(24 * 3600);

/// The last fire time at or before `at`, computed in the schedule's zone.
pub fn previous_fire(cfg: &TokenComplianceConfig, at: Timestamp) -> Option<Timestamp> {
    let zoned = at.to_zoned(cfg.timezone.clone());
    cfg.schedule
        .find_previous_occurrence(&zoned, true)
        .ok()
        .map(|z| z.timestamp())
}

/// Runs the compliance report on its schedule until `shutdown` turns true.
///
/// At start, the most recent fire time is caught up if it lies within [`CATCH_UP`] and the outbox has never seen
/// its report, so a restart or an outage of the process over the fire time loses nothing; a first start shortly
/// after a fire time therefore sends that report at once.
pub async fn run_schedule(
    cfg: TokenComplianceConfig,
    registry: Arc<Registry>,
    outbox: Arc<Outbox>,
    shutdown: watch::Receiver<bool>,
) {
    run_schedule_with_clock(cfg, registry, outbox, shutdown, Timestamp::now).await
}

/// [`run_schedule`] with the wall clock given, so tests can drive it from tokio's paused clock.
pub async fn run_schedule_with_clock(
    cfg: TokenComplianceConfig,
    registry: Arc<Registry>,
    outbox: Arc<Outbox>,
    mut shutdown: watch::Receiver<bool>,
    clock: impl Fn() -> Timestamp,
) {
    let mut after = clock();
    if let Some(prev) = previous_fire(&cfg, after) {
        let late = Duration::try_from(prev.duration_until(after)).unwrap_or(Duration::MAX);
        if late <= CATCH_UP && !outbox.knows(&report_id(prev)) {
            tracing::info!(missed = %prev, "sending the compliance report missed while the exporter was down");
            if let Err(error) = enqueue_report(&cfg, &registry, &outbox, prev) {
                tracing::error!(%error, "cannot queue the compliance report");
            }
        }
    }
    loop {
        let Some(fire) = next_fire(&cfg, after) else {
            tracing::error!(schedule = %cfg.schedule_text, "the report schedule never fires again; report stopped");
            return;
        };
        tracing::info!(next = %fire, schedule = %cfg.schedule_text, timezone = %cfg.timezone_name, "next compliance report");
        loop {
            let now = clock();
            if now >= fire {
                break;
            }
            let wait = Duration::try_from(now.duration_until(fire))
                .unwrap_or(Duration::ZERO)
                .min(MAX_SLEEP);
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        match enqueue_report(&cfg, &registry, &outbox, fire) {
            Ok(_) => tracing::info!(id = %report_id(fire), "compliance report queued"),
            Err(error) => tracing::error!(%error, "cannot queue the compliance report"),
        }
        after = fire;
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;
    use jiff::tz::TimeZone;

    use super::*;
    use crate::model::{Agent, AgentList, Provider};
    use crate::notify::config::parse_schedule;

    const DAY: i64 = 86_400;

    fn now() -> Timestamp {
        Timestamp::from_second(1_780_000_000).unwrap()
    }

    fn agent(id: &str, name: &str, age_days: Option<i64>) -> Agent {
        let mut a = Agent::new(id, name);
        a.token_rotated =
            age_days.map(|d| Timestamp::from_second(now().as_second() - d * DAY).unwrap());
        a
    }

    fn source(name: &str, agents: Vec<Agent>) -> Arc<SourceStatus> {
        let mut s = SourceStatus::new(name, Provider::Celigo);
        s.agents = Some(Arc::new(AgentList {
            polled_at: now(),
            agents,
        }));
        s.up = true;
        s.polls = 1;
        Arc::new(s)
    }

    fn fleet() -> Report {
        let mut created = agent("a5", "created-only", Some(100));
        created.token_rotated_source = TokenDateSource::Created;
        build(
            &[
                source(
                    "prod-us",
                    vec![
                        agent("a1", "fresh", Some(10)),
                        agent("a2", "=cmd|calc", Some(80)),
                        agent("a3", "old, \"quoted\"\nname", Some(120)),
                        agent("a4", "no-date", None),
                    ],
                ),
                source("prod-eu", vec![created]),
            ],
            TokenPolicy::default(),
            now(),
        )
    }

    #[test]
    fn rows_are_classified_against_the_policy_and_sorted_most_urgent_first() {
        let r = fleet();
        let got: Vec<(&str, TokenStatus)> = r
            .agents
            .iter()
            .map(|a| (a.agent_id.as_str(), a.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a3", TokenStatus::Overdue),
                ("a5", TokenStatus::Overdue),
                ("a2", TokenStatus::DueSoon),
                ("a4", TokenStatus::Unknown),
                ("a1", TokenStatus::Ok),
            ],
            "report: {r:#?}"
        );
        assert_eq!(
            r.summary_line(),
            "5 agents: 2 overdue, 1 due soon, 1 unknown, 1 ok."
        );
        let a3 = &r.agents[0];
        assert_eq!(
            a3.due_at,
            Some(Timestamp::from_second(now().as_second() - 30 * DAY).unwrap())
        );
        assert!(r.agents[1].rotation_date_is_creation);
    }

    #[test]
    fn the_table_escapes_line_breaks_and_marks_creation_dates() {
        let t = render(ReportFormat::Table, &fleet());
        assert!(t.contains("old, \"quoted\"\\nname"), "table:\n{t}");
        assert!(t.contains("(created)"), "table:\n{t}");
        assert!(
            t.lines().nth(1).unwrap().starts_with("5 agents"),
            "table:\n{t}"
        );
        let first_row = t.lines().find(|l| l.starts_with("overdue")).unwrap();
        assert!(
            first_row.contains("a3") && first_row.contains("120d"),
            "first row: {first_row}"
        );
    }

    #[test]
    fn csv_quotes_fields_and_defuses_spreadsheet_formulas() {
        let c = render(ReportFormat::Csv, &fleet());
        assert!(
            c.starts_with("status,account,provider,agent_id,agent_name,"),
            "csv:\n{c}"
        );
        assert!(c.contains("\"old, \"\"quoted\"\"\nname\""), "csv:\n{c}");
        assert!(
            c.contains(",'=cmd|calc,"),
            "a formula was not defused:\n{c}"
        );
        // 5 rows + header; one name holds a line break inside quotes.
        assert_eq!(c.matches("\r\n").count(), 6, "csv:\n{c}");
    }

    #[test]
    fn json_carries_the_summary_and_every_agent() {
        let j: serde_json::Value =
            serde_json::from_str(&render(ReportFormat::Json, &fleet())).unwrap();
        assert_eq!(j["summary"]["overdue"], 2, "json: {j}");
        assert_eq!(j["agents"].as_array().unwrap().len(), 5, "json: {j}");
        assert_eq!(j["agents"][0]["status"], "overdue", "json: {j}");
        assert_eq!(j["agents"][0]["token_age_seconds"], 120 * DAY, "json: {j}");
    }

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
    fn a_source_without_data_is_not_reported_as_an_empty_fleet() {
        let never = Arc::new(SourceStatus::new("prod-eu", Provider::Celigo));
        let r = build(&[never], TokenPolicy::default(), now());
        assert!(
            r.summary_line()
                .contains("Incomplete: no data from prod-eu"),
            "{}",
            r.summary_line()
        );
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

    fn schedule(expr: &str, tz: &str) -> TokenComplianceConfig {
        TokenComplianceConfig {
            schedule_text: expr.into(),
            schedule: parse_schedule(expr).unwrap(),
            timezone: TimeZone::get(tz).unwrap(),
            timezone_name: tz.into(),
            to: vec![],
            policy: TokenPolicy::default(),
        }
    }

    fn at(tz: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
        date(y, mo, d)
            .at(h, mi, 0, 0)
            .in_tz(tz)
            .unwrap()
            .timestamp()
    }

    #[test]
    fn a_weekly_schedule_stays_at_nine_local_across_the_spring_dst_change() {
        let cfg = schedule("0 9 * * MON", "Europe/Berlin");
        // Monday 2026-03-23 09:00 CET is 08:00 UTC; after the change on Sunday 2026-03-29, 09:00 CEST is 07:00 UTC.
        let first = next_fire(&cfg, at("UTC", 2026, 3, 20, 0, 0)).unwrap();
        let second = next_fire(&cfg, first).unwrap();
        assert_eq!(first.to_string(), "2026-03-23T08:00:00Z");
        assert_eq!(second.to_string(), "2026-03-30T07:00:00Z");
    }

    #[test]
    fn a_time_skipped_by_spring_forward_fires_once_that_day() {
        // 2026-03-29 is the last Sunday of March: Berlin jumps from 02:00 to 03:00, so 02:30 does not exist.
        let cfg = schedule("30 2 * * *", "Europe/Berlin");
        let mut t = at("Europe/Berlin", 2026, 3, 28, 12, 0);
        let mut fires = Vec::new();
        for _ in 0..3 {
            t = next_fire(&cfg, t).unwrap();
            fires.push(
                t.to_zoned(TimeZone::get("Europe/Berlin").unwrap())
                    .to_string(),
            );
        }
        let on_the_day = fires.iter().filter(|f| f.starts_with("2026-03-29")).count();
        assert_eq!(on_the_day, 1, "fires: {fires:?}");
        assert!(fires[0].starts_with("2026-03-29T03:"), "fires: {fires:?}");
        assert!(fires[1].starts_with("2026-03-30T02:30"), "fires: {fires:?}");
    }

    #[test]
    fn a_time_repeated_by_fall_back_fires_once_that_day() {
        // 2026-10-25 is the last Sunday of October: 02:00 to 03:00 happens twice in Berlin.
        let cfg = schedule("30 2 * * *", "Europe/Berlin");
        let mut t = at("Europe/Berlin", 2026, 10, 24, 12, 0);
        let mut fires = Vec::new();
        for _ in 0..3 {
            t = next_fire(&cfg, t).unwrap();
            fires.push(t);
        }
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let shown: Vec<String> = fires
            .iter()
            .map(|f| f.to_zoned(berlin.clone()).to_string())
            .collect();
        let on_the_day = shown.iter().filter(|f| f.starts_with("2026-10-25")).count();
        assert_eq!(on_the_day, 1, "fires: {shown:?}");
        assert_eq!(
            fires[0].to_string(),
            "2026-10-25T00:30:00Z",
            "fires: {shown:?}"
        );
        assert_eq!(
            fires[1].to_string(),
            "2026-10-26T01:30:00Z",
            "fires: {shown:?}"
        );
    }

    #[test]
    fn a_report_is_queued_once_per_fire_time() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), Default::default()).unwrap();
        let registry = Registry::new([("prod-us", Provider::Celigo)]);
        let cfg = schedule("0 9 * * MON", "Europe/Berlin");
        let fire = at("UTC", 2026, 3, 23, 8, 0);
        assert!(enqueue_report(&cfg, &registry, &outbox, fire).unwrap());
        assert!(!enqueue_report(&cfg, &registry, &outbox, fire).unwrap());
        assert_eq!(outbox.pending_ids(), vec![report_id(fire)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_schedule_queues_one_report_per_fire_time_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Outbox::open(dir.path(), Default::default()).unwrap());
        let registry = Arc::new(Registry::new([("prod-us", Provider::Celigo)]));
        let cfg = schedule("*/10 * * * *", "Europe/Berlin");
        let base = at("UTC", 2026, 3, 29, 0, 55);
        let start = tokio::time::Instant::now();
        let clock = move || base + jiff::SignedDuration::try_from(start.elapsed()).unwrap();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_schedule_with_clock(
            cfg,
            registry,
            outbox.clone(),
            stopped,
            clock,
        ));
        tokio::time::sleep(Duration::from_secs(31 * 60)).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        let mut ids = outbox.pending_ids();
        ids.sort();
        // 00:50 is caught up at start (the outbox never saw it); then 01:00, 01:10 and 01:20 fire.
        let expected: Vec<String> = [(0, 50), (1, 0), (1, 10), (1, 20)]
            .iter()
            .map(|(h, m)| report_id(at("UTC", 2026, 3, 29, *h, *m)))
            .collect();
        assert_eq!(ids, expected, "queued reports");
    }

    #[tokio::test(start_paused = true)]
    async fn a_report_missed_long_ago_or_already_sent_is_not_caught_up() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Outbox::open(dir.path(), Default::default()).unwrap());
        let registry = Arc::new(Registry::new([("prod-us", Provider::Celigo)]));
        // Weekly on Monday 09:00 Berlin; start on Wednesday: Monday's report is more than a day late.
        let cfg = schedule("0 9 * * MON", "Europe/Berlin");
        let wednesday = at("Europe/Berlin", 2026, 3, 25, 12, 0);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_schedule_with_clock(
            cfg.clone(),
            registry.clone(),
            outbox.clone(),
            stopped,
            move || wednesday,
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert!(
            outbox.pending_ids().is_empty(),
            "queued: {:?}",
            outbox.pending_ids()
        );

        // Monday afternoon, with the morning's report already queued: no second copy.
        let monday = at("Europe/Berlin", 2026, 3, 23, 15, 0);
        let morning = at("Europe/Berlin", 2026, 3, 23, 9, 0);
        assert!(enqueue_report(&cfg, &registry, &outbox, morning).unwrap());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_schedule_with_clock(
            cfg,
            registry,
            outbox.clone(),
            stopped,
            move || monday,
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(outbox.pending_ids(), vec![report_id(morning)]);
    }
}
