//! The rules of grafana/dashboard-linter, applied to `dashboards/onprem-agents.json`.
//!
//! The linter is a Go program, not something `make test` can install, so its rules are implemented below, one
//! function per rule, each named after the linter's rule and its source file (`lint/rule_*.go` in
//! github.com/grafana/dashboard-linter, read at commit 4d0844b4). PromQL is parsed with `promql-parser` after the
//! variables are expanded the way the linter's `lint/variables.go` does; that every expression also runs is proven
//! against a real Prometheus by `prometheus_stack::every_dashboard_query_returns_data_from_a_real_prometheus`.
//!
//! Where this project asks more than the linter, the stricter reading is used and says so: every panel other than a
//! row needs a title, a description and a unit (the linter checks six panel types and skips panels with value
//! mappings); `job` and `instance` must offer All; `increase` must run over `$__rate_interval` or `$__range`; a
//! counter is recognised by its metric name (the linter compares the printed selector, matchers included, so
//! `x_total{job="a"}` slipped past it).
//!
//! Each rule is also shown to fire on a dashboard broken on purpose, so a rule that finds nothing proves something.

use std::time::Duration;

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, VectorSelector};
use serde_json::{Value, json};

/// Sample values the linter gives Grafana's global variables (`lint/variables.go`): odd durations, so that a range
/// written as `[$__rate_interval]` can be told from any range written by hand. The durations are the linter's, split
/// into units (8869990787ms is 14w4d15h53m10s787ms): promql-parser reads each unit's count as a 32-bit number.
const GLOBALS: [(&str, &str); 8] = [
    ("__rate_interval", "14w4d15h53m10s787ms"),
    ("__interval", "8w8h10m56s611ms"),
    ("__interval_ms", "7781188786"),
    ("__range_ms", "6737667980"),
    ("__range_s", "9397795485"),
    ("__range", "10w6h2m50s749ms"),
    ("__dashboard", "AwREbnft"),
    ("__auto", "12s345ms"),
];
const RATE_INTERVAL: Duration = Duration::from_millis(8_869_990_787);
const RANGE: Duration = Duration::from_millis(6_069_770_749);

/// The units `lint/rule_panel_units.go` accepts: Grafana's value formats, as the linter lists them.
#[rustfmt::skip]
const VALID_UNITS: &[&str] = &[
    "none", "string", "short", "percent", "percentunit", "humidity", "dB", "hex0x", "hex", "sci", "locale", "pixel",
    "accMS2", "accFS2", "accG", "degree", "radian", "grad", "arcmin", "arcsec", "areaM2", "areaF2", "areaMI2",
    "flops", "mflops", "gflops", "tflops", "pflops", "eflops", "zflops", "yflops", "ppm", "conppb", "conngm3",
    "conngNm3", "conμgm3", "conμgNm3", "conmgm3", "conmgNm3", "congm3", "congNm3", "conmgdL", "conmmolL",
    "currencyUSD", "currencyGBP", "currencyEUR", "currencyJPY", "currencyRUB", "currencyUAH", "currencyBRL",
    "currencyDKK", "currencyISK", "currencyNOK", "currencySEK", "currencyCZK", "currencyCHF", "currencyPLN",
    "currencyBTC", "currencymBTC", "currencyμBTC", "currencyZAR", "currencyINR", "currencyKRW", "currencyIDR",
    "currencyPHP", "currencyVND", "bytes", "decbytes", "bits", "decbits", "kbytes", "deckbytes", "mbytes",
    "decmbytes", "gbytes", "decgbytes", "tbytes", "dectbytes", "pbytes", "decpbytes", "pps", "binBps", "Bps",
    "binbps", "bps", "KiBs", "Kibits", "KBs", "Kbits", "MiBs", "Mibits", "MBs", "Mbits", "GiBs", "Gibits", "GBs",
    "Gbits", "TiBs", "Tibits", "TBs", "Tbits", "PiBs", "Pibits", "PBs", "Pbits", "dateTimeAsIso",
    "dateTimeAsIsoNoDateIfToday", "dateTimeAsUS", "dateTimeAsUSNoDateIfToday", "dateTimeAsLocal",
    "dateTimeAsLocalNoDateIfToday", "dateTimeAsSystem", "dateTimeFromNow", "watt", "kwatt", "megwatt", "gwatt",
    "mwatt", "Wm2", "voltamp", "kvoltamp", "voltampreact", "kvoltampreact", "watth", "watthperkg", "kwatth",
    "kwattm", "amph", "kamph", "mamph", "joule", "ev", "amp", "kamp", "mamp", "volt", "kvolt", "mvolt", "dBm", "ohm",
    "kohm", "Mohm", "farad", "µfarad", "nfarad", "pfarad", "ffarad", "henry", "mhenry", "µhenry", "lumens",
    "flowgpm", "flowcms", "flowcfs", "flowcfm", "litreh", "flowlpm", "flowmlpm", "lux", "forceNm", "forcekNm",
    "forceN", "forcekN", "Hs", "KHs", "MHs", "GHs", "THs", "PHs", "EHs", "massmg", "massg", "masslb", "masskg",
    "masst", "lengthmm", "lengthin", "lengthft", "lengthm", "lengthkm", "lengthmi", "pressurembar", "pressurebar",
    "pressurekbar", "pressurepa", "pressurehpa", "pressurekpa", "pressurehg", "pressurepsi", "radbq", "radci",
    "radgy", "radrad", "radsv", "radmsv", "radusv", "radrem", "radexpckg", "radr", "radsvh", "radmsvh", "radusvh",
    "rotrpm", "rothz", "rotrads", "rotdegs", "celsius", "fahrenheit", "kelvin", "hertz", "ns", "µs", "ms", "s", "m",
    "h", "d", "dtdurationms", "dtdurations", "dthms", "dtdhms", "timeticks", "clockms", "clocks", "cps", "ops",
    "reqps", "rps", "wps", "iops", "cpm", "opm", "rpm", "wpm", "mps", "mpm", "velocityms", "velocitykmh",
    "velocitymph", "velocityknot", "mlitre", "litre", "m3", "Nm3", "dm3", "gallons", "bool", "bool_yes_no",
    "bool_on_off",
];

/// One finding: the rule's name as the linter prints it, and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    rule: &'static str,
    message: String,
}

#[test]
fn the_dashboard_passes_every_dashboard_linter_rule() {
    let findings = lint(&dashboard());
    assert!(
        findings.is_empty(),
        "{} findings:\n{}",
        findings.len(),
        findings
            .iter()
            .map(|f| format!("{}: {}", f.rule, f.message))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_dashboard_shows_each_agents_availability_over_its_time_range() {
    let dashboard = dashboard();
    let panel = panels(&dashboard)
        .into_iter()
        .find(|p| {
            p["targets"].as_array().into_iter().flatten().any(|t| {
                let expr = t["expr"].as_str().unwrap_or_default();
                expr.contains("1 - ")
                    && expr.contains("avg_over_time(onprem_agent_offline{")
                    && expr.contains("[$__range]")
                    && expr.contains("agent_id")
            })
        })
        .expect("a panel with 1 - avg_over_time(onprem_agent_offline{...}[$__range]) per agent");
    assert_eq!(
        panel["fieldConfig"]["defaults"]["unit"], "percentunit",
        "availability is a share"
    );
}

#[test]
fn each_rule_fires_on_a_dashboard_broken_on_purpose() {
    type Breakage = fn(&mut Value);
    let cases: Vec<(&str, Breakage)> = vec![
        ("template-datasource-rule", |d| {
            d["templating"]["list"][0]["name"] = json!("ds")
        }),
        ("template-job-rule", |d| {
            set_variable(d, "job", "multi", json!(false))
        }),
        ("template-instance-rule", |d| {
            set_variable(d, "instance", "allValue", json!(".*"))
        }),
        ("template-label-promql-rule", |d| {
            set_variable(
                d,
                "account",
                "query",
                json!("label_values(onprem_agent_source_up{, account)"),
            )
        }),
        ("template-on-time-change-reload-rule", |d| {
            set_variable(d, "provider", "refresh", json!(1))
        }),
        ("panel-datasource-rule", |d| {
            d["panels"][1]["datasource"] = json!({"type": "prometheus", "uid": "P1809F7CD0C75ACF3"})
        }),
        ("panel-title-description-rule", |d| {
            d["panels"][1]["description"] = json!("")
        }),
        ("panel-units-rule", |d| {
            d["panels"][1]["fieldConfig"]["defaults"]["unit"] = json!("agents")
        }),
        ("panel-no-targets-rule", |d| {
            d["panels"][1].as_object_mut().unwrap().remove("targets");
        }),
        ("uneditable-dashboard", |d| d["editable"] = json!(true)),
        ("target-promql-rule", |d| {
            first_target_of(d)["expr"] =
                json!("sum(onprem_agent_info{job=~\"$job\", instance=~\"$instance\"}")
        }),
        ("target-job-rule", |d| {
            first_target_of(d)["expr"] = json!("count(onprem_agent_info{instance=~\"$instance\"})")
        }),
        ("target-instance-rule", |d| {
            first_target_of(d)["expr"] =
                json!("count(onprem_agent_info{job=~\"$job\", instance=\"a:1\"})")
        }),
        ("target-rate-interval-rule", |d| {
            first_target_of(d)["expr"] = json!(
                "sum(rate(onprem_agent_source_errors_total{job=~\"$job\", instance=~\"$instance\"}[5m]))"
            )
        }),
        ("target-counter-agg-rule", |d| {
            first_target_of(d)["expr"] = json!(
                "sum(onprem_agent_source_errors_total{job=~\"$job\", instance=~\"$instance\"})"
            )
        }),
    ];
    for (rule, breakage) in cases {
        let mut broken = dashboard();
        breakage(&mut broken);
        let findings = lint(&broken);
        assert!(
            findings.iter().any(|f| f.rule == rule),
            "{rule} did not fire on a dashboard broken for it; findings: {findings:#?}"
        );
    }
}

fn first_target_of(dashboard: &mut Value) -> &mut Value {
    dashboard["panels"]
        .as_array_mut()
        .expect("panels")
        .iter_mut()
        .find(|p| p["targets"].is_array())
        .map(|p| &mut p["targets"][0])
        .expect("a panel with a target")
}

fn set_variable(dashboard: &mut Value, name: &str, key: &str, value: Value) {
    let variable = dashboard["templating"]["list"]
        .as_array_mut()
        .expect("variables")
        .iter_mut()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no variable {name}"));
    variable[key] = value;
}

// ---------------------------------------------------------------------------------------------------------------
// The rules.
// ---------------------------------------------------------------------------------------------------------------

/// Every rule of the linter's `NewRuleSet` (lint/rules.go) that applies to a Prometheus dashboard; the two LogQL
/// rules have nothing to check here.
fn lint(dashboard: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    template_datasource_rule(dashboard, &mut out);
    template_required_rule(dashboard, "job", "template-job-rule", &mut out);
    template_required_rule(dashboard, "instance", "template-instance-rule", &mut out);
    template_label_promql_rule(dashboard, &mut out);
    template_on_time_change_reload_rule(dashboard, &mut out);
    uneditable_rule(dashboard, &mut out);
    for panel in panels(dashboard) {
        panel_rules(panel, &mut out);
        for target in panel["targets"].as_array().into_iter().flatten() {
            target_rules(panel, target, &mut out);
        }
    }
    out
}

fn finding(out: &mut Vec<Finding>, rule: &'static str, message: String) {
    out.push(Finding { rule, message });
}

/// lint/rule_template_datasource.go: one datasource variable, named `datasource` and labelled `Data source`, for
/// Prometheus.
fn template_datasource_rule(dashboard: &Value, out: &mut Vec<Finding>) {
    const RULE: &str = "template-datasource-rule";
    let sources: Vec<&Value> = variables(dashboard)
        .into_iter()
        .filter(|v| v["type"] == "datasource")
        .collect();
    if sources.len() != 1 {
        finding(
            out,
            RULE,
            format!("expected one data source variable, found {}", sources.len()),
        );
        return;
    }
    let source = sources[0];
    if source["query"] != "prometheus" {
        finding(
            out,
            RULE,
            format!(
                "the data source variable is for {}, not prometheus",
                source["query"]
            ),
        );
    }
    if !matches!(
        source["name"].as_str(),
        Some("datasource" | "prometheus_datasource")
    ) {
        finding(
            out,
            RULE,
            format!(
                "the data source variable is named {}, not datasource",
                source["name"]
            ),
        );
    }
    if !matches!(
        source["label"].as_str(),
        Some("Data source" | "Prometheus data source")
    ) {
        finding(
            out,
            RULE,
            format!("the data source variable is labelled {}", source["label"]),
        );
    }
}

/// lint/rule_template_job.go and rule_template_instance.go (`checkTemplate`): a multi-select Prometheus query
/// variable on `$datasource`, labelled `Job`/`Instance`, whose All is `.+`; and, stricter than the linter, with All on offer.
fn template_required_rule(
    dashboard: &Value,
    name: &str,
    rule: &'static str,
    out: &mut Vec<Finding>,
) {
    let Some(variable) = variables(dashboard).into_iter().find(|v| v["name"] == name) else {
        finding(out, rule, format!("is missing the {name} template"));
        return;
    };
    if !matches!(
        variable["datasource"]["uid"].as_str(),
        Some(
            "$datasource" | "${datasource}" | "$prometheus_datasource" | "${prometheus_datasource}"
        )
    ) {
        finding(
            out,
            rule,
            format!("{name} template should use datasource '$datasource'"),
        );
    }
    if variable["type"] != "query" {
        finding(
            out,
            rule,
            format!("{name} template should be a Prometheus query"),
        );
    }
    let mut label = name.to_owned();
    label[..1].make_ascii_uppercase();
    if variable["label"] != label.as_str() {
        finding(
            out,
            rule,
            format!("{name} template should be labeled '{label}'"),
        );
    }
    if variable["multi"] != true {
        finding(
            out,
            rule,
            format!("{name} template should be a multi select"),
        );
    }
    if variable["includeAll"] != true {
        finding(out, rule, format!("{name} template should offer All"));
    }
    if variable["allValue"] != ".+" {
        finding(
            out,
            rule,
            format!(
                "{name} template allValue should be '.+', is {}",
                variable["allValue"]
            ),
        );
    }
}

/// lint/rule_template_label_promql.go: a query variable is `label_names`, `label_values`, `metrics` or
/// `query_result` of valid PromQL. (The linter passes whatever the Go parser returns a partial tree for; here the
/// selector of `label_values(SELECTOR, LABEL)` must parse, and LABEL must be a label name.)
fn template_label_promql_rule(dashboard: &Value, out: &mut Vec<Finding>) {
    const RULE: &str = "template-label-promql-rule";
    let shape = regex::Regex::new(r"^([a-z_]+)\((.*)\)$").expect("a valid regex");
    let label_name = regex::Regex::new(r"^[a-zA-Z_][a-zA-Z0-9_]*$").expect("a valid regex");
    for variable in variables(dashboard)
        .into_iter()
        .filter(|v| v["type"] == "query")
    {
        let name = variable["name"].as_str().unwrap_or_default();
        let query = variable["query"].as_str().unwrap_or_default().trim();
        let Some(parts) = shape.captures(query) else {
            finding(
                out,
                RULE,
                format!("template '{name}' invalid 'query': {query}"),
            );
            continue;
        };
        let (function, argument) = (&parts[1], parts[2].trim());
        let expr = match function {
            "label_values" => match argument.rsplit_once(',') {
                Some((selector, label)) if label_name.is_match(label.trim()) => selector,
                Some((_, label)) => {
                    finding(
                        out,
                        RULE,
                        format!("template '{name}': {label:?} is not a label name"),
                    );
                    continue;
                }
                None if label_name.is_match(argument) => continue,
                None => argument,
            },
            "query_result" | "metrics" => argument,
            "label_names" if argument.is_empty() => continue,
            "label_names" => argument,
            other => {
                finding(
                    out,
                    RULE,
                    format!("template '{name}' invalid 'function': {other}"),
                );
                continue;
            }
        };
        if function == "metrics" {
            continue; // a regex over metric names, not PromQL
        }
        if let Err(error) = parse(expr) {
            finding(
                out,
                RULE,
                format!("template '{name}' invalid templated label '{query}': {error}"),
            );
        }
    }
}

/// lint/rule_template_on_time_change_reload.go: query variables refresh on time range change (2).
fn template_on_time_change_reload_rule(dashboard: &Value, out: &mut Vec<Finding>) {
    for variable in variables(dashboard)
        .into_iter()
        .filter(|v| v["type"] == "query")
    {
        if variable["refresh"] != 2 {
            finding(
                out,
                "template-on-time-change-reload-rule",
                format!(
                    "variable '{}' refreshes with {}, not 2",
                    variable["name"], variable["refresh"]
                ),
            );
        }
    }
}

/// lint/rule_uneditable.go: a shipped dashboard is not editable in place.
fn uneditable_rule(dashboard: &Value, out: &mut Vec<Finding>) {
    if dashboard["editable"] != false {
        finding(
            out,
            "uneditable-dashboard",
            "is editable, it should be set to 'editable: false'".into(),
        );
    }
}

/// lint/rule_panel_datasource.go, rule_panel_title_description.go, rule_panel_units.go and
/// rule_panel_no_targets.go, on every panel but rows.
fn panel_rules(panel: &Value, out: &mut Vec<Finding>) {
    if panel["type"] == "row" {
        return;
    }
    let title = panel["title"].as_str().unwrap_or_default();
    if !matches!(
        panel["datasource"]["uid"].as_str(),
        Some("$datasource" | "${datasource}")
    ) {
        finding(
            out,
            "panel-datasource-rule",
            format!(
                "panel '{title}' does not use a templated datasource, uses {}",
                panel["datasource"]
            ),
        );
    }
    let description = panel["description"].as_str().unwrap_or_default();
    if title.trim().is_empty() || description.trim().is_empty() {
        finding(
            out,
            "panel-title-description-rule",
            format!("panel '{title}' has a missing title or description"),
        );
    }
    let config = &panel["fieldConfig"];
    let mut units: Vec<&Value> = vec![&config["defaults"]["unit"]];
    for properties in config["overrides"].as_array().into_iter().flatten() {
        for property in properties["properties"].as_array().into_iter().flatten() {
            if property["id"] == "unit" {
                units.push(&property["value"]);
            }
        }
    }
    for unit in units {
        if !unit.as_str().is_some_and(|u| VALID_UNITS.contains(&u)) {
            finding(
                out,
                "panel-units-rule",
                format!("panel '{title}' has no or invalid units defined: {unit}"),
            );
        }
    }
    if panel["targets"].as_array().is_none_or(|t| t.is_empty()) {
        finding(
            out,
            "panel-no-targets-rule",
            format!("panel '{title}' has no targets"),
        );
    }
}

/// lint/rule_target_promql.go, rule_target_job_instance.go, rule_target_rate_interval.go and
/// rule_target_counter_agg.go.
fn target_rules(panel: &Value, target: &Value, out: &mut Vec<Finding>) {
    let title = panel["title"].as_str().unwrap_or_default();
    let raw = target["expr"].as_str().unwrap_or_default();
    let expr = match parse(&expand_variables(raw)) {
        Ok(expr) => expr,
        Err(error) => {
            finding(
                out,
                "target-promql-rule",
                format!("panel '{title}': invalid PromQL query '{raw}': {error}"),
            );
            return;
        }
    };
    let mut facts = Facts::default();
    facts.collect(&expr, None);

    for selector in &facts.selectors {
        for (label, rule) in [
            ("job", "target-job-rule"),
            ("instance", "target-instance-rule"),
        ] {
            let wanted = format!("${label}");
            let ok =
                selector.vs.matchers.matchers.iter().any(|m| {
                    m.name == label && matches!(m.op, MatchOp::Re(_)) && m.value == wanted
                });
            if !ok {
                finding(
                    out,
                    rule,
                    format!(
                        "panel '{title}': {} has no {label}=~\"{wanted}\"",
                        selector.vs
                    ),
                );
            }
        }
        let name = selector.vs.name.clone().or_else(|| {
            selector
                .vs
                .matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__")
                .map(|m| m.value.clone())
        });
        if name.is_some_and(|n| n.ends_with("_total"))
            && !matches!(selector.ranged_in, Some("rate" | "irate" | "increase"))
        {
            finding(
                out,
                "target-counter-agg-rule",
                format!(
                    "panel '{title}': counter {} is not inside rate, irate or increase",
                    selector.vs
                ),
            );
        }
    }

    for range in &facts.ranges {
        let allowed = match range.call {
            _ if range.range == RATE_INTERVAL => true,
            Some("rate" | "irate") => false,
            // Stricter than the linter: an increase is per $__rate_interval, or over the dashboard's range.
            Some("increase") => range.range == RANGE,
            Some(_) => true,
            None => false,
        };
        if !allowed {
            finding(
                out,
                "target-rate-interval-rule",
                format!(
                    "panel '{title}': invalid PromQL query '{raw}': should use $__rate_interval"
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// PromQL.
// ---------------------------------------------------------------------------------------------------------------

fn parse(expr: &str) -> Result<Expr, String> {
    parser::parse(expr)
}

/// A vector selector, and the function directly around it when it is the inside of a range (`rate(x[5m])`).
struct Selector<'a> {
    vs: &'a VectorSelector,
    ranged_in: Option<&'static str>,
}

/// A range `[d]`, and the function directly around it.
struct Range {
    range: Duration,
    call: Option<&'static str>,
}

#[derive(Default)]
struct Facts<'a> {
    selectors: Vec<Selector<'a>>,
    ranges: Vec<Range>,
}

impl<'a> Facts<'a> {
    /// Walks the tree the way the linter's `parser.Walk` does, keeping what the rules ask of each node's parent.
    fn collect(&mut self, expr: &'a Expr, parent_call: Option<&'static str>) {
        match expr {
            Expr::VectorSelector(vs) => self.selectors.push(Selector {
                vs,
                ranged_in: None,
            }),
            Expr::MatrixSelector(ms) => {
                self.selectors.push(Selector {
                    vs: &ms.vs,
                    ranged_in: parent_call,
                });
                self.ranges.push(Range {
                    range: ms.range,
                    call: parent_call,
                });
            }
            Expr::Call(call) => {
                for arg in &call.args.args {
                    self.collect(arg, Some(call.func.name));
                }
            }
            Expr::Aggregate(aggregate) => {
                self.collect(&aggregate.expr, None);
                if let Some(param) = &aggregate.param {
                    self.collect(param, None);
                }
            }
            Expr::Binary(binary) => {
                self.collect(&binary.lhs, None);
                self.collect(&binary.rhs, None);
            }
            Expr::Unary(unary) => self.collect(&unary.expr, None),
            Expr::Paren(paren) => self.collect(&paren.expr, None),
            Expr::Subquery(subquery) => self.collect(&subquery.expr, None),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
}

/// `expandVariables` of lint/variables.go: outside double-quoted strings, `$name`, `${name}` and `[[name]]` become
/// sample values (the globals' above, otherwise the variable's own name, as the linter does for a variable without
/// a current value). Inside quotes nothing changes, so `job=~"$job"` stays as written and the matcher rules can see
/// it.
fn expand_variables(expr: &str) -> String {
    let variable = regex::Regex::new(r"\$([0-9A-Za-z_]+)|\$\{([^}]+)\}|\[\[([^\[\]]+)\]\]")
        .expect("a valid regex");
    expr.split('"')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                return part.to_owned();
            }
            variable
                .replace_all(part, |caps: &regex::Captures<'_>| {
                    let spec = caps
                        .get(1)
                        .or_else(|| caps.get(2))
                        .or_else(|| caps.get(3))
                        .map_or("", |m| m.as_str());
                    let name = spec.split(':').next().unwrap_or_default();
                    GLOBALS
                        .iter()
                        .find(|(global, _)| *global == name)
                        .map_or(name, |(_, value)| value)
                        .to_owned()
                })
                .into_owned()
        })
        .collect::<Vec<_>>()
        .join("\"")
}

// ---------------------------------------------------------------------------------------------------------------
// The dashboard.
// ---------------------------------------------------------------------------------------------------------------

fn dashboard() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/onprem-agents.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn variables(dashboard: &Value) -> Vec<&Value> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect()
}

/// Every panel, those inside collapsed rows too.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}
