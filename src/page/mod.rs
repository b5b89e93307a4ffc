//! The status page at `/`: what is wrong and where, at a glance, rendered on the server with no script and no
//! external asset (the Content-Security-Policy allows neither), and the HTML 404 page.
//!
//! The page reads plain data, [`PageData`], which the server fills from the source registry and which every running
//! part (the rule engine, the notification outbox, the web layer) completes through
//! [`crate::server::LandingSection::contribute`]. A datum nobody provides is `None` and its part of the page is not
//! shown, so a process without alerting shows no alerts section rather than an empty one.
//!
//! - [`summary`] counts what is wrong (the strip at the top) and ranks the agents worst first;
//! - [`mod@render`] writes the HTML.

pub mod render;
pub mod summary;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::config::reports::TokenPolicy;
use crate::rules::views::AlertView;
use crate::status::SourceStatus;

pub use render::{not_found, render};

/// How often the page reloads itself (a `<meta http-equiv="refresh">`, which the CSP does not restrict), in seconds.
/// Long enough to read a table, short enough that a recovered source turns green without a manual reload.
pub const REFRESH_SECONDS: u32 = 30;

/// The most agents listed; beyond that the page links to the JSON API instead of growing without bound. The worst
/// agents are listed first, so the cut only hides healthy ones unless thousands are failing.
pub const MAX_AGENT_ROWS: usize = 2000;

/// The most alerts listed in full per group; the rest are counted. A group of 5,000 `AgentOffline` alerts (a site
/// losing its network) stays one screen long.
pub const MAX_ALERT_ROWS_PER_GROUP: usize = 50;

/// Everything the status page shows, as plain values.
#[derive(Debug, Clone)]
pub struct PageData {
    /// Every configured source, in config order.
    pub sources: Vec<Arc<SourceStatus>>,
    /// The thresholds the summary strip and the agents table count against.
    pub thresholds: Thresholds,
    /// The rule engine's alerts; `None` when alerting is not configured (the section is left out).
    pub alerts: Option<AlertsPanel>,
    /// The notification outbox's health; `None` without alerting.
    pub notifications: Option<NotificationHealth>,
    /// The shard this process polls, as `index/total` or a name; `None` when the fleet is not sharded.
    pub shard: Option<String>,
    /// What the exporter cannot do right now and says so up front (notifications that cannot be queued, a state
    /// file that cannot be saved), one sentence each; empty when all is well.
    pub problems: Vec<String>,
}

impl PageData {
    /// Page data with the sources alone and the default thresholds; the rest is filled by contributions.
    pub fn new(sources: Vec<Arc<SourceStatus>>) -> PageData {
        PageData {
            sources,
            thresholds: Thresholds::default(),
            alerts: None,
            notifications: None,
            shard: None,
            problems: Vec::new(),
        }
    }
}

/// When an agent counts as stale or its token as due or overdue. The rule engine's values when it runs (so the strip
/// agrees with the alerts); otherwise the rule engine's and the report's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Heartbeat age above which an agent is stale; also how long after creation an agent that never sent a
    /// heartbeat is stale.
    pub heartbeat_stale_after: Duration,
    /// Token age at which rotation is overdue, and how long before that it is due.
    pub token: TokenPolicy,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        let rules = crate::config::alerting::Rules::default();
        Thresholds {
            heartbeat_stale_after: rules.heartbeat_after,
            token: TokenPolicy::default(),
        }
    }
}

/// The rule engine's part of the page.
#[derive(Debug, Clone, Default)]
pub struct AlertsPanel {
    /// Every alert the engine holds (resolved ones are left out when rendering), in any order.
    pub alerts: Vec<AlertView>,
    /// How many silences are active now.
    pub active_silences: usize,
    /// Whether the silence API takes `POST` and `DELETE` (`run --web.enable-admin-api`).
    pub writes_open: bool,
}

/// The notification outbox's part of the page.
#[derive(Debug, Clone, Default)]
pub struct NotificationHealth {
    /// Notifications waiting in the outbox (new or retrying).
    pub queued: u64,
    /// Deliveries that succeeded since start.
    pub sent: u64,
    /// Delivery attempts that failed since start (each retry counts).
    pub failed: u64,
    /// One entry per configured channel (email, webhook, …), in config order.
    pub channels: Vec<ChannelHealth>,
}

/// One notification channel's latest failure.
#[derive(Debug, Clone)]
pub struct ChannelHealth {
    /// The channel's name as the `channel` label spells it (`email`, `webhook`, …).
    pub channel: String,
    /// When the last delivery through it failed and why (a message that carries no secret); `None` if none has
    /// failed since start.
    pub last_failure: Option<(Timestamp, String)>,
}
