//! The `/metrics` exposition, written by the `prometheus-client` crate: every metric name lives here, together with
//! the one registry the server encodes on each scrape and the helpers its collectors share.
//!
//! The registry is built once at start-up ([`Exposition::new`]). The per-agent and per-source families come from
//! [`FleetCollector`], which reads the current snapshots at scrape time and computes ages from the clock then, so
//! ages keep growing between polls and a scrape never waits on the network. The rule engine and the outbox add
//! collectors of their own ([`crate::alerting::AlertingCollector`]); the build info is an ordinary [`Info`] metric.
//! [`SharedRenders`] lets concurrent scrapes share one render (and counts renders).
//!
//! Names: the crate appends `_total` to counter samples, `_info` to info samples and the unit to the family name. The
//! constants in [`names`] are the final OpenMetrics family names; [`family`] strips the unit before handing a name to
//! the crate, which appends it again, so the names on the wire are exactly the constants.

mod fleet;
mod shared;
mod stream;

use std::fmt;
use std::sync::{Arc, LazyLock};

use jiff::Timestamp;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Unit;

pub use fleet::FleetCollector;
pub use shared::{REUSE_WINDOW, RendersCollector, SharedRenders};

use crate::status::Registry;

/// Every metric family name, in one place. Names are a contract with dashboards, alert rules and the rule engine.
pub mod names {
    /// Info family; its sample is `onprem_agent_info`.
    pub const AGENT: &str = "onprem_agent";
    pub const OFFLINE: &str = "onprem_agent_offline";
    pub const LAST_HEARTBEAT: &str = "onprem_agent_last_heartbeat_timestamp_seconds";
    pub const HEARTBEAT_AGE: &str = "onprem_agent_heartbeat_age_seconds";
    pub const TOKEN_ROTATED: &str = "onprem_agent_token_last_rotated_timestamp_seconds";
    pub const TOKEN_AGE: &str = "onprem_agent_token_age_seconds";
    pub const CREATED: &str = "onprem_agent_created_timestamp_seconds";
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
    pub const SOURCE_NOT_BEFORE: &str = "onprem_agent_source_not_before_timestamp_seconds";
    /// Counter family; its sample is `onprem_agent_source_errors_total`.
    pub const SOURCE_ERRORS: &str = "onprem_agent_source_errors";
    /// Info family; its sample is `onprem_agent_exporter_build_info`.
    pub const BUILD: &str = "onprem_agent_exporter_build";
    pub const ALERTS: &str = "onprem_agent_alerts";
    /// Counter family; its sample is `onprem_agent_notifications_total`.
    pub const NOTIFICATIONS: &str = "onprem_agent_notifications";
    pub const NOTIFICATION_QUEUE: &str = "onprem_agent_notification_queue_length";
    /// Counter family; its sample is `onprem_agent_exporter_renders_total`.
    pub const RENDERS: &str = "onprem_agent_exporter_renders";
    /// Counter family; its sample is `onprem_agent_notification_enqueue_failures_total`.
    pub const NOTIFICATION_ENQUEUE_FAILURES: &str = "onprem_agent_notification_enqueue_failures";
    pub const NOTIFICATION_LAST_ENQUEUE: &str =
        "onprem_agent_notification_last_enqueue_timestamp_seconds";
    /// Counter family; its sample is `onprem_agent_state_save_failures_total`.
    pub const STATE_SAVE_FAILURES: &str = "onprem_agent_state_save_failures";
    pub const STATE_LAST_SAVE: &str = "onprem_agent_state_last_save_timestamp_seconds";
    /// Counter family; its sample is `onprem_agent_state_corrupt_files_total`.
    pub const STATE_CORRUPT: &str = "onprem_agent_state_corrupt_files";
    /// Counter family; its sample is `onprem_agent_alertmanager_alerts_sent_total{alertmanager}`.
    pub const ALERTMANAGER_SENT: &str = "onprem_agent_alertmanager_alerts_sent";
    /// Counter family; its sample is `onprem_agent_alertmanager_errors_total{alertmanager}`.
    pub const ALERTMANAGER_ERRORS: &str = "onprem_agent_alertmanager_errors";
    /// Counter family; its sample is `onprem_agent_alertmanager_alerts_dropped_total{alertmanager}`.
    pub const ALERTMANAGER_DROPPED: &str = "onprem_agent_alertmanager_alerts_dropped";
    pub const ALERTMANAGER_QUEUE: &str = "onprem_agent_alertmanager_queue_length";
    pub const ALERTMANAGER_LAST_SUCCESS: &str =
        "onprem_agent_alertmanager_last_success_timestamp_seconds";
    /// Info family; its sample is `onprem_agent_exporter_shard_info{index,total}`.
    pub const SHARD: &str = "onprem_agent_exporter_shard";
}

/// HELP text of [`names::BUILD`], without the final `.` that [`prometheus_client::registry::Registry::register`]
/// appends.
const BUILD_HELP: &str = "Build information about the exporter; the value is always 1";

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
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The exporter's metrics registry: built once at start-up, encoded on every scrape.
#[derive(Debug)]
pub struct Exposition {
    registry: prometheus_client::registry::Registry,
    /// The snapshots the fleet collector reads, kept here too so that [`Exposition::render`] can size its buffer.
    sources: Arc<Registry>,
}

impl Exposition {
    /// A registry holding the build info and the fleet collector over `sources`, with ages computed from the system
    /// clock at scrape time.
    pub fn new(sources: Arc<Registry>) -> Exposition {
        Exposition::with_clock(sources, Timestamp::now)
    }

    /// [`Exposition::new`] with ages computed from `clock`, so that tests can fix the scrape instant.
    pub fn with_clock(sources: Arc<Registry>, clock: fn() -> Timestamp) -> Exposition {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register(
            names::BUILD,
            BUILD_HELP,
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(FleetCollector::new(sources.clone(), clock)));
        Exposition { registry, sources }
    }

    /// Adds `onprem_agent_exporter_shard_info{index,total}`: which shard of the configured sources this process owns
    /// (`0` of `1` for every command that polls them all). Every command that serves or prints the exposition calls
    /// it once.
    pub fn register_shard(&mut self, shard: &crate::domain::Shard) {
        self.registry.register(
            names::SHARD,
            "Which shard of the configured sources this replica owns (index of total); 0 of 1 when not sharded",
            Info::new(shard.info_labels()),
        );
    }

    /// Adds the families of another part of the process (the rule engine and the outbox), encoded after the fleet's.
    pub fn register_collector(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    /// Encodes the whole exposition into one string.
    pub fn render(&self, format: Format) -> String {
        let agents: usize = self
            .sources
            .snapshot()
            .iter()
            .map(|s| s.agents.as_ref().map_or(0, |a| a.agents.len()))
            .sum();
        // About 900 bytes per agent across every per-agent family; growing by doubling would copy up to 80 MiB
        // at 100k agents.
        let mut out = String::with_capacity(4096 + agents * 900);
        // Writing into a `String` cannot fail, and every collector here only fails when its writer does.
        let _ = self.encode(&mut out, format);
        out
    }

    /// Encodes the whole exposition into `sink` (a gzip encoder, say) in chunks of a few KiB, so that the whole
    /// uncompressed exposition (about 80 MiB at 100k agents) is never held in memory. Returns the first error the
    /// sink returned.
    pub fn render_to(&self, sink: &mut dyn std::io::Write, format: Format) -> std::io::Result<()> {
        let mut writer = stream::IoWriter::new(sink);
        let encoded = self.encode(&mut writer, format);
        writer.finish(encoded)
    }

    /// Encodes every family, then (for OpenMetrics) the `# EOF` line.
    ///
    /// Both encoders of the crate gather output in a 4 KiB buffer and hand it to `out` whenever it fills, so `out`
    /// receives the exposition in chunks of about 4 KiB and never the whole of it at once.
    fn encode(&self, out: &mut impl fmt::Write, format: Format) -> fmt::Result {
        match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(out, &self.registry),
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(out, &self.registry)
            }
        }
    }
}

/// `prometheus-client` has a `Ratios` unit, but it is spelt `ratios`; ours has always been `ratio`.
static RATIO: LazyLock<Unit> = LazyLock::new(|| Unit::Other("ratio".to_string()));

/// Splits the unit off a family name from [`names`]: the crate appends the unit to the name it is given (and writes
/// the OpenMetrics `# UNIT` line), so it must be given the name without it.
fn split_unit(name: &'static str) -> (&'static str, Option<&'static Unit>) {
    static SECONDS: Unit = Unit::Seconds;
    static BYTES: Unit = Unit::Bytes;
    if let Some(base) = name.strip_suffix("_seconds") {
        (base, Some(&SECONDS))
    } else if let Some(base) = name.strip_suffix("_bytes") {
        (base, Some(&BYTES))
    } else if let Some(base) = name.strip_suffix("_ratio") {
        (base, Some(&*RATIO))
    } else {
        (name, None)
    }
}

/// Writes the `# HELP`, `# TYPE` (and for OpenMetrics `# UNIT`) lines of the family `name` (a constant of
/// [`names`]) and returns the encoder of its samples.
///
/// `help` is a full sentence ending in `.`, written as it is: the crate's OpenMetrics encoder does not escape HELP,
/// so it must hold no `\`, `"` or newline (a test checks every family's).
pub fn family<'s>(
    encoder: &'s mut DescriptorEncoder<'_>,
    name: &'static str,
    help: &'static str,
    kind: MetricType,
) -> Result<MetricEncoder<'s>, fmt::Error> {
    let (base, unit) = split_unit(name);
    encoder.encode_descriptor(base, help, unit, kind)
}

/// Writes one gauge sample with `labels`, or nothing when `value` is not finite: the crate's OpenMetrics encoder
/// writes infinity as `inf`, which OpenMetrics parsers reject, and no figure we export can be infinite or NaN short
/// of a bug upstream, so a missing series is the honest answer.
///
/// Whole values are written as integers (`1763790123`, not `1763790123.0`), as they always have been; others in the
/// shortest form that reads back as the same `f64`.
pub fn gauge(
    family: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    value: f64,
) -> fmt::Result {
    if !value.is_finite() {
        return Ok(());
    }
    let mut sample = family.encode_family(labels)?;
    if value.fract() == 0.0 && value.abs() < 1e15 {
        sample.encode_gauge(&(value as i64))
    } else {
        sample.encode_gauge(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Agent, AgentList, Health, Provider};
    use crate::status::SourceStatus;

    /// The scrape instant of these tests: 100,000 s after the epoch.
    fn at_100k() -> Timestamp {
        Timestamp::from_second(100_000).unwrap()
    }

    /// An exposition over one Celigo source named `acct "x"` holding `agents`, scraped at [`at_100k`].
    fn exposition_with(agents: Vec<Agent>) -> Exposition {
        let registry = Registry::new([("acct \"x\"", Provider::Celigo)]);
        let mut s = SourceStatus::new("acct \"x\"", Provider::Celigo);
        s.up = true;
        s.polls = 1;
        s.agents = Some(Arc::new(AgentList {
            polled_at: Timestamp::UNIX_EPOCH,
            agents,
        }));
        registry.publish(0, s);
        Exposition::with_clock(Arc::new(registry), at_100k)
    }

    #[test]
    fn an_agent_that_never_sent_a_heartbeat_has_no_heartbeat_series() {
        let mut a = Agent::new("a1", "never");
        a.token_rotated = Some(Timestamp::from_second(100_000 - 60).unwrap());
        let text = exposition_with(vec![a]).render(Format::Text);
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
    fn the_creation_date_is_a_timestamp_series_only_when_the_platform_gives_one() {
        let mut known = Agent::new("a1", "known");
        known.created_at = Some(Timestamp::from_second(99_000).unwrap());
        let unknown = Agent::new("a2", "unknown");
        let om = exposition_with(vec![known, unknown]).render(Format::OpenMetrics);
        for want in [
            "# UNIT onprem_agent_created_timestamp_seconds seconds\n",
            "onprem_agent_created_timestamp_seconds{account=\"acct \\\"x\\\"\",provider=\"celigo\",agent_id=\"a1\",agent_name=\"known\"} 99000\n",
        ] {
            assert!(om.contains(want), "missing {want:?} in:\n{om}");
        }
        assert_eq!(
            om.lines()
                .filter(|l| l.starts_with("onprem_agent_created_timestamp_seconds{"))
                .count(),
            1,
            "only the agent with a creation date has a series:\n{om}"
        );
    }

    #[test]
    fn label_values_escape_quotes_backslashes_and_newlines() {
        let a = Agent::new("id", "a \"q\" \\ b\nc");
        let text = exposition_with(vec![a]).render(Format::OpenMetrics);
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
        let e = exposition_with(vec![Agent::new("id", "n")]);
        let om = e.render(Format::OpenMetrics);
        let text = e.render(Format::Text);
        let cases = [
            (&om, "# TYPE onprem_agent info\n"),
            (&om, "# TYPE onprem_agent_source_errors counter\n"),
            (&om, "# UNIT onprem_agent_heartbeat_age_seconds seconds\n"),
            (&om, "# TYPE onprem_agent_exporter_build info\n"),
            (&om, "onprem_agent_exporter_build_info{version=\""),
            (&text, "# TYPE onprem_agent_info gauge\n"),
            (&text, "# TYPE onprem_agent_source_errors_total counter\n"),
            (&text, "# TYPE onprem_agent_exporter_build_info gauge\n"),
            (
                &om,
                "onprem_agent_source_errors_total{account=\"acct \\\"x\\\"\",provider=\"celigo\",reason=\"http_5xx\"} 0\n",
            ),
            (
                &om,
                "onprem_agent_info{account=\"acct \\\"x\\\"\",provider=\"celigo\",agent_id=\"id\",agent_name=\"n\",version=\"\"} 1\n",
            ),
        ];
        for (out, want) in cases {
            assert!(out.contains(want), "missing {want:?} in:\n{out}");
        }
        assert!(om.ends_with("# EOF\n"));
        assert!(!text.contains("# EOF"));
        assert!(!text.contains("# UNIT"), "{text}");
    }

    #[test]
    fn units_are_written_once_as_they_always_were() {
        let mut a = Agent::new("id", "n");
        a.health = Some(Box::new(Health {
            cpu_ratio: Some(0.25),
            disk_free_bytes: Some(1e9),
            ..Health::default()
        }));
        let om = exposition_with(vec![a]).render(Format::OpenMetrics);
        for want in [
            "# UNIT onprem_agent_cpu_ratio ratio\n",
            "# UNIT onprem_agent_disk_free_bytes bytes\n",
            "# UNIT onprem_agent_last_heartbeat_timestamp_seconds seconds\n",
            "onprem_agent_cpu_ratio{account=\"acct \\\"x\\\"\",provider=\"celigo\",agent_id=\"id\",agent_name=\"n\"} 0.25\n",
            "onprem_agent_disk_free_bytes{account=\"acct \\\"x\\\"\",provider=\"celigo\",agent_id=\"id\",agent_name=\"n\"} 1000000000\n",
        ] {
            assert!(om.contains(want), "missing {want:?} in:\n{om}");
        }
        assert!(
            !om.contains("_ratio_ratio") && !om.contains("_seconds_seconds"),
            "{om}"
        );
    }

    #[test]
    fn every_help_is_a_full_sentence_free_of_characters_that_need_escaping() {
        let mut a = Agent::new("id", "n");
        a.health = Some(Box::new(Health {
            last_error: Some("disk \"full\"\n\\".to_string()),
            ..Health::default()
        }));
        let om = exposition_with(vec![a]).render(Format::OpenMetrics);
        let helps: Vec<&str> = om.lines().filter(|l| l.starts_with("# HELP ")).collect();
        assert!(helps.len() >= 17, "{om}");
        for line in helps {
            let help = line.splitn(4, ' ').nth(3).unwrap_or("");
            assert!(
                help.starts_with(|c: char| c.is_ascii_uppercase()) && help.ends_with('.'),
                "not a full sentence: {line}"
            );
            assert!(!help.contains(['\\', '"']), "needs escaping: {line}");
        }
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
            let text = exposition_with(vec![Agent::new("id", value)]).render(Format::Text);
            let want = format!("agent_id=\"id\",agent_name=\"{expected}\"}}");
            assert!(
                text.contains(&want),
                "escaping {value:?}: no {want:?} in\n{text}"
            );
        }
    }

    #[test]
    fn values_are_written_as_integers_when_whole_round_trip_otherwise_and_skipped_when_not_finite()
    {
        let cases = [
            (0.0, Some("0")),
            (1.0, Some("1")),
            (-3.0, Some("-3")),
            (1_763_790_123.0, Some("1763790123")),
            (1_763_790_123.456, Some("1763790123.456")),
            (0.25, Some("0.25")),
            (12_345.678_901_234, Some("12345.678901234")),
            (f64::NAN, None),
            (f64::INFINITY, None),
            (f64::NEG_INFINITY, None),
        ];
        let round_trips = [1e-7, 1e15 + 0.5, 2e20, -0.001, 1_763_790_123.000_001];
        for format in [Format::OpenMetrics, Format::Text] {
            for (value, expected) in cases {
                let written = written_as(value, format);
                assert_eq!(
                    written.as_deref(),
                    expected,
                    "writing {value:?} as {format:?}"
                );
            }
            for value in round_trips {
                let written = written_as(value, format).unwrap();
                assert_eq!(
                    written.parse::<f64>(),
                    Ok(value),
                    "{value:?} was written as {written:?} in {format:?}"
                );
            }
        }
    }

    /// How [`gauge`] writes `value` in `format`; `None` when it writes no sample.
    fn written_as(value: f64, format: Format) -> Option<String> {
        #[derive(Debug)]
        struct One(f64);
        impl Collector for One {
            fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
                let mut fam = family(&mut encoder, "x", "X.", MetricType::Gauge)?;
                gauge(&mut fam, &[("l", "v")], self.0)
            }
        }
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(One(value)));
        let mut out = String::new();
        match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            }
        }
        .unwrap();
        out.lines()
            .find_map(|l| l.strip_prefix("x{l=\"v\"} "))
            .map(str::to_string)
    }

    /// A sink that records the size of every write it is given.
    struct Recording {
        bytes: Vec<u8>,
        writes: Vec<usize>,
    }

    impl std::io::Write for Recording {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.writes.push(buf.len());
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn streaming_writes_exactly_what_rendering_to_a_string_writes_in_small_chunks() {
        // Enough agents for an exposition a hundred times the size of a chunk.
        let agents: Vec<Agent> = (0..2_000)
            .map(|i| {
                let mut a = Agent::new(format!("id-{i}"), format!("agent \"{i}\"\nline"));
                a.last_heartbeat = Some(Timestamp::from_second(1_000 + i).unwrap());
                a
            })
            .collect();
        let e = exposition_with(agents);
        for format in [Format::OpenMetrics, Format::Text] {
            let whole = e.render(format);
            let mut streamed = Recording {
                bytes: Vec::new(),
                writes: Vec::new(),
            };
            e.render_to(&mut streamed, format).unwrap();
            assert!(
                whole.as_bytes() == streamed.bytes.as_slice(),
                "{format:?}: streamed output differs"
            );
            let largest = streamed.writes.iter().max().copied().unwrap_or(0);
            assert!(
                whole.len() > 100 * 8192 && largest <= 8192,
                "{format:?}: {} bytes in {} writes, the largest {largest} bytes",
                whole.len(),
                streamed.writes.len()
            );
        }
    }

    #[test]
    fn a_failing_sink_fails_the_render_with_its_own_error() {
        struct Broken;
        impl std::io::Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let e = exposition_with(vec![Agent::new("id", "n")]);
        let err = e.render_to(&mut Broken, Format::OpenMetrics).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
    }
}
