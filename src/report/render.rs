//! The report as a terminal table, RFC 4180 CSV or JSON. Every upstream string is made safe for its format:
//! control characters escaped in the table, quoted (and guarded against spreadsheet formulas) in CSV, JSON-escaped
//! in JSON.

use std::fmt::Write as _;
use std::str::FromStr;

use jiff::Timestamp;
use unicode_width::UnicodeWidthStr as _;

use super::build::{Report, ReportRow};
use crate::untrusted::text_safe;

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

/// An age or a policy in whole seconds, for people, in the one duration format of every alert and page: `97d 3h`,
/// `120d`, `5h`.
pub(super) fn format_age(seconds: u64) -> String {
    crate::humanize::duration(std::time::Duration::from_secs(seconds))
}

pub(super) fn date(t: Option<Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "-".to_string())
}

pub(super) fn rotated_text(r: &ReportRow) -> String {
    let d = date(Some(r.last_rotated));
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

pub(super) fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Token rotation compliance at {} (max age {}, due soon {} before)",
        report.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        format_age(report.max_age_seconds),
        format_age(report.warn_before_seconds)
    );
    let _ = writeln!(out, "{}", report.summary_line());
    for u in &report.undated {
        let _ = writeln!(out, "{}", text_safe(&u.sentence()));
    }
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
                format_age(r.token_age_seconds),
                rotated_text(r),
                date(r.due_at),
            ]
        })
        .collect();
    // Display width, not characters: a CJK character or an emoji takes two terminal columns.
    let mut widths = header.map(|h| h.width());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = w - cell.width();
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

pub(super) fn render_csv(report: &Report) -> String {
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
            r.token_age_seconds.to_string(),
            format_age(r.token_age_seconds),
            r.last_rotated.to_string(),
            r.rotation_date_is_creation.to_string(),
            r.due_at.map(|t| t.to_string()).unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::build::tests::{DAY, fleet};

    #[test]
    fn the_table_escapes_line_breaks_and_marks_creation_dates() {
        let t = render(ReportFormat::Table, &fleet());
        assert!(t.contains("old, \"quoted\"\\nname"), "table:\n{t}");
        assert!(t.contains("(created)"), "table:\n{t}");
        assert!(
            t.lines().nth(1).unwrap().starts_with("4 agents"),
            "table:\n{t}"
        );
        let first_row = t.lines().find(|l| l.starts_with("overdue")).unwrap();
        assert!(
            first_row.contains("a3") && first_row.contains("120d"),
            "first row: {first_row}"
        );
        assert!(
            t.lines()
                .next()
                .unwrap()
                .contains("(max age 90d, due soon 14d before)"),
            "table:\n{t}"
        );
        assert!(
            t.lines()
                .any(|l| l
                    == "1 Celigo agent in prod-us: no token date available from this provider"),
            "table:\n{t}"
        );
        assert!(!t.contains("no-date"), "an undated agent got a row:\n{t}");
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
        // 4 judged rows + header; one name holds a line break inside quotes; the undated agent has no row.
        assert_eq!(c.matches("\r\n").count(), 5, "csv:\n{c}");
        assert!(!c.contains("no-date"), "csv:\n{c}");
    }

    #[test]
    fn json_carries_the_summary_and_every_agent() {
        let j: serde_json::Value =
            serde_json::from_str(&render(ReportFormat::Json, &fleet())).unwrap();
        assert_eq!(j["summary"]["overdue"], 2, "json: {j}");
        assert_eq!(j["agents"].as_array().unwrap().len(), 4, "json: {j}");
        assert_eq!(j["undated"][0]["agents"], 1, "json: {j}");
        assert_eq!(j["agents"][0]["status"], "overdue", "json: {j}");
        assert_eq!(j["agents"][0]["token_age_seconds"], 120 * DAY, "json: {j}");
    }

    #[test]
    fn columns_line_up_by_display_width_with_wide_characters() {
        use crate::config::reports::TokenPolicy;
        use crate::report::build::build;
        use crate::report::build::tests::{agent, now, source};
        let r = build(
            &[source(
                "prod",
                vec![
                    agent("w1", "東京エージェント", Some(100)),
                    agent("w2", "edge 🚀", Some(80)),
                    agent("w3", "plain", Some(10)),
                ],
            )],
            TokenPolicy::default(),
            now(),
        );
        let t = render(ReportFormat::Table, &r);
        let table: Vec<&str> = t.lines().skip_while(|l| !l.starts_with("STATUS")).collect();
        assert_eq!(table.len(), 4, "table:\n{t}");
        // The ID column starts at the same display column on every line.
        let id_column = |l: &str| {
            let at = l.find(" ID").or_else(|| l.find(" w")).unwrap();
            l[..at].width()
        };
        let columns: Vec<usize> = table.iter().map(|l| id_column(l)).collect();
        assert!(
            columns.windows(2).all(|w| w[0] == w[1]),
            "columns {columns:?} in:\n{t}"
        );
    }
}
