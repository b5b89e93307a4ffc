//! The per-agent and per-source families, read from the current snapshots at scrape time.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::{family, gauge, names};
use crate::domain::{Agent, Health, age_seconds, unix_seconds};
use crate::sources::ErrorReason;
use crate::status::{Registry, SourceStatus};

/// The labels every per-agent sample starts with, in this order: `account`, `provider`, `agent_id`, `agent_name`.
type AgentLabels<'a> = [(&'static str, Cow<'a, str>); 4];

/// The labels every per-source sample starts with: `account`, `provider`.
type SourceLabels<'a> = [(&'static str, Cow<'a, str>); 2];

/// Reads one per-agent gauge value at scrape time `now`; `None` means the agent has no such series.
type AgentGauge = fn(&Agent, Timestamp) -> Option<f64>;

/// Reads one figure out of an agent's health report.
type HealthField = fn(&Health) -> Option<f64>;

/// Encodes the families of every source and agent from the snapshots current at scrape time.
///
/// Registered once; each scrape loads the snapshots (a few atomic loads, no lock shared with the pollers) and reads
/// the clock, so ages are as of the scrape and a scrape costs time linear in the number of agents.
pub struct FleetCollector {
    sources: Arc<Registry>,
    /// Where `now` comes from: the system clock, or a fixed instant in tests.
    clock: fn() -> Timestamp,
}

impl FleetCollector {
    /// A collector over `sources`, computing ages from `clock()` at each scrape.
    pub fn new(sources: Arc<Registry>, clock: fn() -> Timestamp) -> FleetCollector {
        FleetCollector { sources, clock }
    }
}

impl fmt::Debug for FleetCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetCollector").finish_non_exhaustive()
    }
}

impl Collector for FleetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let now = (self.clock)();
        encode_sources(&mut encoder, &self.sources.snapshot(), now)
    }
}

/// Every agent of every source with its label set.
fn agents(sources: &[Arc<SourceStatus>]) -> impl Iterator<Item = (AgentLabels<'_>, &Agent)> {
    sources.iter().flat_map(|src| {
        let list = src.agents.as_deref().map_or(&[][..], |l| &l.agents[..]);
        list.iter().map(move |agent| {
            let labels = [
                ("account", label_value(&src.name)),
                ("provider", Cow::Borrowed(src.provider.as_str())),
                ("agent_id", label_value(&agent.id)),
                ("agent_name", label_value(&agent.name)),
            ];
            (labels, agent)
        })
    })
}

fn source_labels(s: &SourceStatus) -> SourceLabels<'_> {
    [
        ("account", label_value(&s.name)),
        ("provider", Cow::Borrowed(s.provider.as_str())),
    ]
}

/// The character that stands for a control character in a label value: U+FFFD, the replacement character.
pub const CONTROL_REPLACEMENT: char = '\u{FFFD}';

/// A label value as the exposition can carry it: every control character (C0, DEL and C1: a carriage return, a tab,
/// a NUL, an escape, …) except the newline is replaced by [`CONTROL_REPLACEMENT`]. The encoder escapes `\`, `"` and
/// the newline (`\n`) and nothing else, and a raw carriage return inside a label value breaks the Python
/// OpenMetrics and text parsers; names and versions come from whoever installed an agent, so they may hold any of
/// these. Borrowed, with no copy, in the usual case of a value without one.
pub fn label_value(s: &str) -> Cow<'_, str> {
    let hostile = |c: char| c.is_control() && c != '\n';
    if s.chars().any(hostile) {
        Cow::Owned(
            s.chars()
                .map(|c| if hostile(c) { CONTROL_REPLACEMENT } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

/// Writes the per-agent and per-source families of `sources` as of `now`.
fn encode_sources(
    encoder: &mut DescriptorEncoder<'_>,
    sources: &[Arc<SourceStatus>],
    now: Timestamp,
) -> fmt::Result {
    let mut info = family(
        encoder,
        names::AGENT,
        "Information about an on-premise agent; the value is always 1 and the version and provider-specific \
         details are labels.",
        MetricType::Info,
    )?;
    for (labels, agent) in agents(sources) {
        let version = [(
            "version",
            label_value(agent.version.as_deref().unwrap_or("")),
        )];
        let details: Vec<(&'static str, Cow<'_, str>)> = agent
            .info
            .iter()
            .map(|(k, v)| (*k, label_value(v)))
            .collect();
        info.encode_info(&(labels, (version, details)))?;
    }

    // Per-agent gauges: a missing value means no series for that agent (never a made-up zero).
    let agent_gauges: [(&'static str, &'static str, AgentGauge); 6] = [
        (
            names::OFFLINE,
            "Whether the platform itself considers the agent offline (1) or not (0).",
            |a, _| Some(if a.offline { 1.0 } else { 0.0 }),
        ),
        (
            names::LAST_HEARTBEAT,
            "Unix time of the last heartbeat the platform received from the agent; absent if the agent never sent \
             one.",
            |a, _| a.last_heartbeat.map(unix_seconds),
        ),
        (
            names::HEARTBEAT_AGE,
            "Seconds since the agent's last heartbeat, computed at scrape time; absent if the agent never sent one.",
            |a, now| a.last_heartbeat.map(|t| age_seconds(now, t)),
        ),
        (
            names::TOKEN_ROTATED,
            "Unix time the agent's access token was last rotated (Celigo __accessTokenLastModifiedAt); when the \
             platform never recorded a rotation this is the agent's createdAt; absent for providers that expose no \
             token date.",
            |a, _| a.token_rotated.map(unix_seconds),
        ),
        (
            names::TOKEN_AGE,
            "Seconds since the agent's access token was last rotated (or since createdAt when never rotated), \
             computed at scrape time.",
            |a, now| a.token_rotated.map(|t| age_seconds(now, t)),
        ),
        (
            names::CREATED,
            "Unix time the agent was registered on the platform (Celigo createdAt, or the source's creation date); \
             absent if the platform gives none.",
            |a, _| a.created_at.map(unix_seconds),
        ),
    ];
    for (name, help, get) in agent_gauges {
        let mut fam = family(encoder, name, help, MetricType::Gauge)?;
        for (labels, agent) in agents(sources) {
            if let Some(v) = get(agent, now) {
                gauge(&mut fam, &labels, v)?;
            }
        }
    }

    if agents(sources).any(|(_, a)| a.health.is_some()) {
        let health_families: [(&'static str, &'static str, HealthField); 5] = [
            (
                names::CPU,
                "CPU use the agent reports for its host, from 0 to 1.",
                |h| h.cpu_ratio,
            ),
            (
                names::MEMORY,
                "Memory use the agent reports for its host, from 0 to 1.",
                |h| h.memory_ratio,
            ),
            (
                names::DISK_FREE,
                "Free disk space the agent reports for its host, in bytes.",
                |h| h.disk_free_bytes,
            ),
            (
                names::ACTIVE_JOBS,
                "Jobs the agent reports as running now.",
                |h| h.active_jobs,
            ),
            (
                names::QUEUE_DEPTH,
                "Jobs the agent reports as waiting to run.",
                |h| h.queue_depth,
            ),
        ];
        for (name, help, get) in health_families {
            let mut fam = family(encoder, name, help, MetricType::Gauge)?;
            for (labels, agent) in agents(sources) {
                if let Some(v) = agent.health.as_deref().and_then(get) {
                    gauge(&mut fam, &labels, v)?;
                }
            }
        }
        let mut fam = family(
            encoder,
            names::LAST_ERROR,
            "The last error an agent reports, present only while it reports one.",
            MetricType::Info,
        )?;
        for (labels, agent) in agents(sources) {
            if let Some(e) = agent
                .health
                .as_deref()
                .and_then(|h| h.last_error.as_deref())
            {
                fam.encode_info(&(labels, [("error", label_value(e))]))?;
            }
        }
    }

    let mut fam = family(
        encoder,
        names::SOURCE_UP,
        "Whether the most recent poll of the source succeeded (1) or not (0); agent series keep the last good \
         snapshot while it is 0.",
        MetricType::Gauge,
    )?;
    for s in sources {
        gauge(&mut fam, &source_labels(s), if s.up { 1.0 } else { 0.0 })?;
    }
    let mut fam = family(
        encoder,
        names::SOURCE_LAST_SUCCESS,
        "Unix time the most recent successful poll of the source finished; absent before the first success.",
        MetricType::Gauge,
    )?;
    for s in sources {
        if let Some(t) = s.last_success {
            gauge(&mut fam, &source_labels(s), unix_seconds(t))?;
        }
    }
    let mut fam = family(
        encoder,
        names::SOURCE_NOT_BEFORE,
        "Unix time before which the upstream asked (by Retry-After) not to be polled, while that is in the future; \
         polls are skipped until then.",
        MetricType::Gauge,
    )?;
    for s in sources {
        if let Some(t) = s.waiting_until(now) {
            gauge(&mut fam, &source_labels(s), unix_seconds(t))?;
        }
    }
    let mut fam = family(
        encoder,
        names::SOURCE_POLL_DURATION,
        "Seconds the most recent poll of the source took, retries and every page included.",
        MetricType::Gauge,
    )?;
    for s in sources {
        if let Some(d) = s.last_duration {
            gauge(&mut fam, &source_labels(s), d.as_secs_f64())?;
        }
    }
    let mut fam = family(
        encoder,
        names::SOURCE_AGENTS,
        "Agents in the source's current snapshot (the last good one while polls fail).",
        MetricType::Gauge,
    )?;
    for s in sources {
        let n = s.agents.as_ref().map_or(0, |a| a.agents.len());
        fam.encode_family(&source_labels(s))?.encode_gauge(&n)?;
    }
    let mut fam = family(
        encoder,
        names::SOURCE_ERRORS,
        "Poll errors and skipped records of the source since the exporter started, by reason.",
        MetricType::Counter,
    )?;
    for s in sources {
        for reason in ErrorReason::ALL {
            let labels = (
                source_labels(s),
                [("reason", Cow::Borrowed(reason.as_str()))],
            );
            fam.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&s.error_count(reason), None)?;
        }
    }
    Ok(())
}
