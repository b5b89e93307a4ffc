//! The `/metrics` exposition: every metric name lives here, and the renderer writes OpenMetrics (or the classic
//! Prometheus text format for clients that do not ask for OpenMetrics) straight from the source snapshots.
//!
//! Rendering reads immutable snapshots and the clock, nothing else: a scrape never waits on the network. Ages are
//! computed from `now` at render time, so they keep growing between polls. Cost is linear in the number of agents:
//! each agent's label set is escaped once per scrape into one buffer and reused by every family.
//!
//! The encoder is written by hand rather than through `prometheus-client` because that crate appends `_total`/`_info`
//! to registered names, appends a `.` to HELP without escaping it, and needs a registry rebuilt per scrape to express
//! per-agent ages; a straight writer over the snapshot is simpler to prove correct and is what the scrape budget
//! (100k agents in well under 150 ms) needs.

use std::fmt::Write as _;
use std::sync::Arc;

use jiff::Timestamp;

use crate::model::{Agent, age_seconds, unix_seconds};
use crate::sources::ErrorReason;
use crate::status::SourceStatus;

/// Every metric family name, in one place. Names are a contract with dashboards, alert rules and the rule engine.
pub mod names {
    /// Info family; its sample is `onprem_agent_info`.
    pub const AGENT: &str = "onprem_agent";
    pub const OFFLINE: &str = "onprem_agent_offline";
    pub const LAST_HEARTBEAT: &str = "onprem_agent_last_heartbeat_timestamp_seconds";
    pub const HEARTBEAT_AGE: &str = "onprem_agent_heartbeat_age_seconds";
    pub const TOKEN_ROTATED: &str = "onprem_agent_token_last_rotated_timestamp_seconds";
    pub const TOKEN_AGE: &str = "onprem_agent_token_age_seconds";
    pub const CPU: &str = "onprem_agent_cpu_ratio";
    pub const MEMORY: &str = "onprem_agent_memory_ratio";
    pub const DISK_FREE: &str = "onprem_agent_disk_free_bytes";
    pub const ACTIVE_JOBS: &str = "onprem_agent_active_jobs";
    pub const QUEUE_DEPTH: &str = "onprem_agent_queue_depth";
    /// Info family; its sample is `onprem_agent_last_error_info`.
    pub const LAST_ERROR: &str = "onprem_agent_last_error";
    pub const SOURCE_UP: &str = "onprem_agent_source_up";
    pub const SOURCE_LAST_SUCCESS: &str = "onprem_agent_source_last_success_timestamp_seconds";
    pub const SOURCE_POLL_DURATION: &str = "onprem_agent_source_poll_duration_seconds";
    pub const SOURCE_AGENTS: &str = "onprem_agent_source_agents";
    /// Counter family; its sample is `onprem_agent_source_errors_total`.
    pub const SOURCE_ERRORS: &str = "onprem_agent_source_errors";
    /// Info family; its sample is `onprem_agent_exporter_build_info`.
    pub const BUILD: &str = "onprem_agent_exporter_build";
    pub const ALERTS: &str = "onprem_agent_alerts";
    /// Counter family; its sample is `onprem_agent_notifications_total`.
    pub const NOTIFICATIONS: &str = "onprem_agent_notifications";
    pub const NOTIFICATION_QUEUE: &str = "onprem_agent_notification_queue_length";
}

/// The exposition format, chosen from the scraper's `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`), what Prometheus asks for.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4, for curl, `promtool check metrics` and older scrapers.
    Text,
}

impl Format {
    /// Picks OpenMetrics if and only if the `Accept` header names it.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Info,
}

/// Metrics that other parts of the process (the rule engine, the notifier) contribute to the exposition.
pub trait ExtraMetrics: Send + Sync {
    /// Writes zero or more complete families.
    fn encode(&self, enc: &mut Encoder<'_>);
}

/// How much text the encoder gathers before handing it to its sink, bytes.
const CHUNK: usize = 64 * 1024;

/// Writes families, one complete block per family, either into a string or in chunks into a writer.
pub struct Encoder<'a> {
    /// Text not yet handed to the sink (all of it when there is no sink).
    out: String,
    format: Format,
    /// Where full chunks go when streaming: the gzip encoder of a scrape. `None` collects everything in `out`.
    sink: Option<&'a mut dyn std::io::Write>,
    /// The first error the sink returned; later chunks are dropped and [`Encoder::finish_stream`] reports it.
    error: Option<std::io::Error>,
}

impl<'a> Encoder<'a> {
    /// An empty encoder for `format`, with room for `capacity` bytes.
    pub fn new(format: Format, capacity: usize) -> Encoder<'static> {
        Encoder::with_buffer(format, String::with_capacity(capacity))
    }

    /// An encoder that writes into `buffer` after clearing it, keeping its capacity, so a caller can reuse one
    /// buffer across renders.
    pub fn with_buffer(format: Format, mut buffer: String) -> Encoder<'static> {
        buffer.clear();
        Encoder {
            out: buffer,
            format,
            sink: None,
            error: None,
        }
    }

    /// An encoder that hands its text to `sink` in chunks of about 64 KiB. A gzip scrape of a large fleet then never
    /// holds the whole uncompressed exposition (about 80 MiB at 100k agents) in memory, and the kernel need not map
    /// that much fresh memory on every scrape.
    pub fn streaming(format: Format, sink: &'a mut dyn std::io::Write) -> Encoder<'a> {
        Encoder {
            out: String::with_capacity(CHUNK + 4096),
            format,
            sink: Some(sink),
            error: None,
        }
    }

    /// Hands the gathered text to the sink once a chunk is full.
    fn spill(&mut self, force: bool) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        if self.out.len() < CHUNK && !force {
            return;
        }
        if self.error.is_none()
            && let Err(e) = sink.write_all(self.out.as_bytes())
        {
            self.error = Some(e);
        }
        self.out.clear();
    }

    /// Writes the `# HELP`, `# TYPE` (and for OpenMetrics `# UNIT`) lines of a family. `help` is a full sentence.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let om = self.format == Format::OpenMetrics;
        // In the text format the sample name is the family name, so the suffix belongs to the family.
        let (text_name, text_type) = match kind {
            Kind::Gauge => (name.to_string(), "gauge"),
            Kind::Counter => (format!("{name}_total"), "counter"),
            Kind::Info => (format!("{name}_info"), "gauge"),
        };
        let (fam, ty) = if om {
            let ty = match kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
                Kind::Info => "info",
            };
            (name, ty)
        } else {
            (text_name.as_str(), text_type)
        };
        self.out.push_str("# HELP ");
        self.out.push_str(fam);
        self.out.push(' ');
        escape_help(&mut self.out, help);
        if !help.ends_with('.') {
            self.out.push('.');
        }
        self.out.push_str("\n# TYPE ");
        self.out.push_str(fam);
        self.out.push(' ');
        self.out.push_str(ty);
        self.out.push('\n');
        if om {
            for unit in ["seconds", "bytes", "ratio"] {
                if name.ends_with(&format!("_{unit}")) {
                    let _ = writeln!(self.out, "# UNIT {fam} {unit}");
                }
            }
        }
    }

    /// Writes one sample: `name` is the full sample name (with `_total`/`_info` suffix), `labels` is an already
    /// escaped label list without braces (may be empty), `extra` are further label pairs escaped here.
    pub fn sample(&mut self, name: &str, labels: &str, extra: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() || !extra.is_empty() {
            self.out.push('{');
            self.out.push_str(labels);
            let mut first = labels.is_empty();
            for (k, v) in extra {
                if !first {
                    self.out.push(',');
                }
                first = false;
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        write_value(&mut self.out, value);
        self.out.push('\n');
        self.spill(false);
    }

    /// Finishes the exposition (OpenMetrics requires `# EOF`) and returns it; empty when streaming.
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.spill(true);
        self.out
    }

    /// Finishes a streaming exposition, reporting the first error the sink returned.
    pub fn finish_stream(mut self) -> std::io::Result<()> {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.spill(true);
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Appends `v` in the exposition's number syntax: integers without a fraction, other values in the shortest form
/// that reads back as the same `f64` (`1763790123.456`, `1e-7`).
///
/// `itoa` and `zmij` (both already built for `serde_json`) rather than `write!`: at 100k agents a scrape writes about
/// 400k timestamps and ages, and `core::fmt`'s float formatting was about a third of the render time.
fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        out.push_str(zmij::Buffer::new().format_finite(v));
    }
}

/// Appends a label value with `\`, `"` and newline escaped, as both formats require.
///
/// Most values need no escaping, so runs of plain bytes are copied whole rather than char by char. The escaped bytes
/// are ASCII, so slicing at them never splits a character.
pub fn escape_label(out: &mut String, v: &str) {
    let mut plain = 0;
    for (i, b) in v.bytes().enumerate() {
        let escaped = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        out.push_str(&v[plain..i]);
        out.push_str(escaped);
        plain = i + 1;
    }
    out.push_str(&v[plain..]);
}

/// Appends HELP text with `\` and newline escaped (OpenMetrics also escapes `"` in HELP).
fn escape_help(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Reads one per-agent gauge value at scrape time `now`; `None` means the agent has no such series.
type AgentGauge = fn(&Agent, Timestamp) -> Option<f64>;

/// Reads one figure out of an agent's health report.
type HealthField = fn(&crate::model::Health) -> Option<f64>;

/// One agent with the escaped label set shared by all its per-agent samples.
struct Row<'a> {
    agent: &'a Agent,
    /// Byte range of this agent's labels in the shared label buffer.
    labels: std::ops::Range<usize>,
}

/// Renders the whole exposition at instant `now`.
pub fn render(
    sources: &[Arc<SourceStatus>],
    extras: &[&dyn ExtraMetrics],
    now: Timestamp,
    format: Format,
) -> String {
    render_into(String::new(), sources, extras, now, format)
}

/// [`render`] into `buffer` (cleared first, capacity kept), for callers that reuse one buffer across renders.
pub fn render_into(
    buffer: String,
    sources: &[Arc<SourceStatus>],
    extras: &[&dyn ExtraMetrics],
    now: Timestamp,
    format: Format,
) -> String {
    let agents = agent_count(sources);
    let mut buffer = buffer;
    buffer.reserve(4096 + agents * 900);
    let mut enc = Encoder::with_buffer(format, buffer);
    encode_all(&mut enc, sources, extras, now);
    enc.finish()
}

/// [`render`] in chunks into `sink` (a gzip encoder, say), so that the whole exposition is never held in memory.
pub fn render_to(
    sink: &mut dyn std::io::Write,
    sources: &[Arc<SourceStatus>],
    extras: &[&dyn ExtraMetrics],
    now: Timestamp,
    format: Format,
) -> std::io::Result<()> {
    let mut enc = Encoder::streaming(format, sink);
    encode_all(&mut enc, sources, extras, now);
    enc.finish_stream()
}

/// The number of agents across all snapshots.
fn agent_count(sources: &[Arc<SourceStatus>]) -> usize {
    sources
        .iter()
        .map(|s| s.agents.as_ref().map_or(0, |a| a.agents.len()))
        .sum()
}

/// Writes every family into `enc`.
fn encode_all(
    enc: &mut Encoder<'_>,
    sources: &[Arc<SourceStatus>],
    extras: &[&dyn ExtraMetrics],
    now: Timestamp,
) {
    let agent_count = agent_count(sources);
    // Escape every label set once; every family below reuses the slices.
    let mut labels = String::with_capacity(agent_count * 120);
    let mut rows: Vec<Row<'_>> = Vec::with_capacity(agent_count);
    for src in sources {
        let Some(list) = &src.agents else { continue };
        for agent in &list.agents {
            let start = labels.len();
            labels.push_str("account=\"");
            escape_label(&mut labels, &src.name);
            labels.push_str("\",provider=\"");
            labels.push_str(src.provider.as_str());
            labels.push_str("\",agent_id=\"");
            escape_label(&mut labels, &agent.id);
            labels.push_str("\",agent_name=\"");
            escape_label(&mut labels, &agent.name);
            labels.push('"');
            rows.push(Row {
                agent,
                labels: start..labels.len(),
            });
        }
    }
    let l = |r: &Row<'_>| &labels[r.labels.clone()];

    enc.family(
        names::AGENT,
        Kind::Info,
        "Information about an on-premise agent; the value is always 1 and the version and provider-specific details are labels",
    );
    let info_name = format!("{}_info", names::AGENT);
    for r in &rows {
        let mut extra: Vec<(&str, &str)> = Vec::with_capacity(1 + r.agent.info.len());
        extra.push(("version", r.agent.version.as_deref().unwrap_or("")));
        for (k, v) in &r.agent.info {
            extra.push((k, v.as_str()));
        }
        enc.sample(&info_name, l(r), &extra, 1.0);
    }

    // Per-agent gauges: a missing value means no series for that agent (never a made-up zero).
    let agent_gauges: [(&str, &str, AgentGauge); 5] = [
        (
            names::OFFLINE,
            "Whether the platform itself considers the agent offline (1) or not (0)",
            |a, _| Some(if a.offline { 1.0 } else { 0.0 }),
        ),
        (
            names::LAST_HEARTBEAT,
            "Unix time of the last heartbeat the platform received from the agent; absent if the agent never sent one",
            |a, _| a.last_heartbeat.map(unix_seconds),
        ),
        (
            names::HEARTBEAT_AGE,
            "Seconds since the agent's last heartbeat, computed at scrape time; absent if the agent never sent one",
            |a, now| a.last_heartbeat.map(|t| age_seconds(now, t)),
        ),
        (
            names::TOKEN_ROTATED,
            "Unix time the agent's access token was last rotated (Celigo __accessTokenLastModifiedAt); when the platform never recorded a rotation this is the agent's createdAt; absent for providers that expose no token date",
            |a, _| a.token_rotated.map(unix_seconds),
        ),
        (
            names::TOKEN_AGE,
            "Seconds since the agent's access token was last rotated (or since createdAt when never rotated), computed at scrape time",
            |a, now| a.token_rotated.map(|t| age_seconds(now, t)),
        ),
    ];
    for (name, help, get) in agent_gauges {
        enc.family(name, Kind::Gauge, help);
        for r in &rows {
            if let Some(v) = get(r.agent, now) {
                enc.sample(name, l(r), &[], v);
            }
        }
    }

    let health_families: [(&str, &str, HealthField); 5] = [
        (
            names::CPU,
            "CPU use the agent reports for its host, from 0 to 1",
            |h| h.cpu_ratio,
        ),
        (
            names::MEMORY,
            "Memory use the agent reports for its host, from 0 to 1",
            |h| h.memory_ratio,
        ),
        (
            names::DISK_FREE,
            "Free disk space the agent reports for its host, in bytes",
            |h| h.disk_free_bytes,
        ),
        (
            names::ACTIVE_JOBS,
            "Jobs the agent reports as running now",
            |h| h.active_jobs,
        ),
        (
            names::QUEUE_DEPTH,
            "Jobs the agent reports as waiting to run",
            |h| h.queue_depth,
        ),
    ];
    if rows.iter().any(|r| r.agent.health.is_some()) {
        for (name, help, get) in health_families {
            enc.family(name, Kind::Gauge, help);
            for r in &rows {
                if let Some(v) = r.agent.health.as_deref().and_then(get) {
                    enc.sample(name, l(r), &[], v);
                }
            }
        }
        enc.family(
            names::LAST_ERROR,
            Kind::Info,
            "The last error an agent reports, present only while it reports one",
        );
        let name = format!("{}_info", names::LAST_ERROR);
        for r in &rows {
            if let Some(e) = r
                .agent
                .health
                .as_ref()
                .and_then(|h| h.last_error.as_deref())
            {
                enc.sample(&name, l(r), &[("error", e)], 1.0);
            }
        }
    }

    let mut src_labels: Vec<String> = Vec::with_capacity(sources.len());
    for s in sources {
        let mut buf = String::from("account=\"");
        escape_label(&mut buf, &s.name);
        buf.push_str("\",provider=\"");
        buf.push_str(s.provider.as_str());
        buf.push('"');
        src_labels.push(buf);
    }
    enc.family(
        names::SOURCE_UP,
        Kind::Gauge,
        "Whether the most recent poll of the source succeeded (1) or not (0); agent series keep the last good snapshot while it is 0",
    );
    for (s, lab) in sources.iter().zip(&src_labels) {
        enc.sample(names::SOURCE_UP, lab, &[], if s.up { 1.0 } else { 0.0 });
    }
    enc.family(
        names::SOURCE_LAST_SUCCESS,
        Kind::Gauge,
        "Unix time the most recent successful poll of the source finished; absent before the first success",
    );
    for (s, lab) in sources.iter().zip(&src_labels) {
        if let Some(t) = s.last_success {
            enc.sample(names::SOURCE_LAST_SUCCESS, lab, &[], unix_seconds(t));
        }
    }
    enc.family(
        names::SOURCE_POLL_DURATION,
        Kind::Gauge,
        "Seconds the most recent poll of the source took, retries and every page included",
    );
    for (s, lab) in sources.iter().zip(&src_labels) {
        if let Some(d) = s.last_duration {
            enc.sample(names::SOURCE_POLL_DURATION, lab, &[], d.as_secs_f64());
        }
    }
    enc.family(
        names::SOURCE_AGENTS,
        Kind::Gauge,
        "Agents in the source's current snapshot (the last good one while polls fail)",
    );
    for (s, lab) in sources.iter().zip(&src_labels) {
        let n = s.agents.as_ref().map_or(0, |a| a.agents.len());
        enc.sample(names::SOURCE_AGENTS, lab, &[], n as f64);
    }
    enc.family(
        names::SOURCE_ERRORS,
        Kind::Counter,
        "Poll errors and skipped records of the source since the exporter started, by reason",
    );
    let errors_name = format!("{}_total", names::SOURCE_ERRORS);
    for (s, lab) in sources.iter().zip(&src_labels) {
        for reason in ErrorReason::ALL {
            enc.sample(
                &errors_name,
                lab,
                &[("reason", reason.as_str())],
                s.error_count(reason) as f64,
            );
        }
    }

    for extra in extras {
        extra.encode(enc);
    }

    enc.family(
        names::BUILD,
        Kind::Info,
        "Build information about the exporter; the value is always 1",
    );
    enc.sample(
        &format!("{}_info", names::BUILD),
        "",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Agent, AgentList, Provider};

    fn status_with(agents: Vec<Agent>) -> Arc<SourceStatus> {
        let mut s = SourceStatus::new("acct \"x\"", Provider::Celigo);
        s.up = true;
        s.polls = 1;
        s.agents = Some(Arc::new(AgentList {
            polled_at: Timestamp::UNIX_EPOCH,
            agents,
        }));
        Arc::new(s)
    }

    #[test]
    fn an_agent_that_never_sent_a_heartbeat_has_no_heartbeat_series() {
        let mut a = Agent::new("a1", "never");
        a.token_rotated = Some(Timestamp::from_second(1_000).unwrap());
        let text = render(
            &[status_with(vec![a])],
            &[],
            Timestamp::from_second(1_060).unwrap(),
            Format::Text,
        );
        assert!(
            !text.contains("onprem_agent_heartbeat_age_seconds{"),
            "{text}"
        );
        assert!(
            !text.contains("onprem_agent_last_heartbeat_timestamp_seconds{"),
            "{text}"
        );
        assert!(
            text.contains("agent_name=\"never\"} 60\n"),
            "token age should be 60 s:\n{text}"
        );
    }

    #[test]
    fn label_values_escape_quotes_backslashes_and_newlines() {
        let a = Agent::new("id", "a \"q\" \\ b\nc");
        let text = render(
            &[status_with(vec![a])],
            &[],
            Timestamp::UNIX_EPOCH,
            Format::OpenMetrics,
        );
        assert!(
            text.contains(r#"account="acct \"x\"",provider="celigo",agent_id="id",agent_name="a \"q\" \\ b\nc""#),
            "{text}"
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("onprem_agent_offline{"))
                .count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn family_and_sample_names_follow_each_format() {
        let s = status_with(vec![Agent::new("id", "n")]);
        let om = render(
            std::slice::from_ref(&s),
            &[],
            Timestamp::UNIX_EPOCH,
            Format::OpenMetrics,
        );
        let text = render(&[s], &[], Timestamp::UNIX_EPOCH, Format::Text);
        let cases = [
            (&om, "# TYPE onprem_agent info\n"),
            (&om, "# TYPE onprem_agent_source_errors counter\n"),
            (&om, "# UNIT onprem_agent_heartbeat_age_seconds seconds\n"),
            (&text, "# TYPE onprem_agent_info gauge\n"),
            (&text, "# TYPE onprem_agent_source_errors_total counter\n"),
            (
                &om,
                "onprem_agent_source_errors_total{account=\"acct \\\"x\\\"\",provider=\"celigo\",reason=\"http_5xx\"} 0\n",
            ),
        ];
        for (out, want) in cases {
            assert!(out.contains(want), "missing {want:?} in:\n{out}");
        }
        assert!(om.ends_with("# EOF\n"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline_and_keep_everything_else() {
        let cases = [
            ("", ""),
            ("plain-agent-001", "plain-agent-001"),
            (r#"say "hi""#, r#"say \"hi\""#),
            ("back\\slash", "back\\\\slash"),
            ("two\nlines", "two\\nlines"),
            ("\"\\\n", "\\\"\\\\\\n"),
            ("Zürich <b>&</b> ☃\n", "Zürich <b>&</b> ☃\\n"),
        ];
        for (value, expected) in cases {
            let mut out = String::from("x=");
            escape_label(&mut out, value);
            assert_eq!(out, format!("x={expected}"), "escaping {value:?}");
        }
    }

    #[test]
    fn values_are_written_as_integers_when_whole_and_round_trip_otherwise() {
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (-3.0, "-3"),
            (1_763_790_123.0, "1763790123"),
            (1_763_790_123.456, "1763790123.456"),
            (0.25, "0.25"),
            (12_345.678_901_234, "12345.678901234"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (value, expected) in cases {
            let mut out = String::new();
            write_value(&mut out, value);
            assert_eq!(out, expected, "writing {value:?}");
        }
        for value in [1e-7, 1e15 + 0.5, 2e20, -0.001, 1_763_790_123.000_001] {
            let mut out = String::new();
            write_value(&mut out, value);
            assert_eq!(
                out.parse::<f64>(),
                Ok(value),
                "{value:?} was written as {out:?}"
            );
        }
    }

    #[test]
    fn streaming_in_chunks_writes_exactly_what_rendering_to_a_string_writes() {
        // Enough agents to cross several chunk boundaries.
        let agents: Vec<Agent> = (0..2_000)
            .map(|i| {
                let mut a = Agent::new(format!("id-{i}"), format!("agent \"{i}\"\nline"));
                a.last_heartbeat = Some(Timestamp::from_second(1_000 + i).unwrap());
                a
            })
            .collect();
        let sources = [status_with(agents)];
        let now = Timestamp::from_second(100_000).unwrap();
        for format in [Format::OpenMetrics, Format::Text] {
            let whole = render(&sources, &[], now, format);
            let mut streamed = Vec::new();
            render_to(&mut streamed, &sources, &[], now, format).unwrap();
            assert!(
                whole.len() > 3 * CHUNK,
                "the test must cross chunk boundaries: {} bytes",
                whole.len()
            );
            assert!(
                whole.as_bytes() == streamed.as_slice(),
                "{format:?}: streamed output differs"
            );
        }
    }
}
