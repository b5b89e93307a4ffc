//! The token-age compliance report: every agent with its token age, last rotation, due date and status (ok, due
//! soon, overdue), most urgent first, as a table, CSV or JSON, and as a scheduled email with the CSV attached.
//!
//! - [`build`](build()) classifies the agents; it is pure, so `report --config FILE` and the scheduler produce the
//!   same report.
//! - [`render`](render()) writes it as a table, CSV or JSON; [`email`](email()) as an email with the CSV attached.
//! - [`run_schedule`] sends it on a cron schedule in a time zone, through the outbox.

mod build;
mod email;
mod render;
mod schedule;

pub use build::{Report, ReportRow, ReportSource, Summary, TokenStatus, Undated, build};
pub use email::{email, send_now};
pub use render::{ReportFormat, render};
pub use schedule::{
    CATCH_UP, enqueue_report, next_fire, previous_fire, report_id, run_schedule,
    run_schedule_with_clock,
};
