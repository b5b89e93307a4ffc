//! How the generic source behaves against scripted upstreams on real sockets: timestamps in three forms, a bare array
//! and nested `items`, cursor and `Link` pagination with their loop guards, the token kept on its origin, `offline`
//! by value list, a field no record carries, and a hostile page.

use crate::support::fake_upstream as fake;

use std::path::Path;
use std::time::Duration;

use fake::{FakeUpstream, Reply};
use jiff::Timestamp;
use onprem_agent_exporter::config::Config;
use onprem_agent_exporter::domain::Agent;
use onprem_agent_exporter::sources::generic::GenericSource;
use onprem_agent_exporter::sources::{ErrorReason, PollOutcome, Source, UpstreamError};
use serde_json::json;
use url::Url;

const TOKEN: &str = "generic-token-leakcanary-4a5b6c";

/// A generic source on `base` with the given `generic:` block (indented by six spaces), as `check-config` would
/// load it.
fn source(base: &Url, generic: &str) -> GenericSource {
    source_with(base, "", generic)
}

/// [`source`] with more keys of the source entry (each line indented by four spaces).
fn source_with(base: &Url, keys: &str, generic: &str) -> GenericSource {
    let text = format!(
        "sources:\n  - name: acct\n    provider: generic\n    base_url: {base}\n    token_env: TOKEN\n    \
         max_attempts: 3\n    request_timeout: 5s\n{keys}    generic:\n{generic}"
    );
    let config = Config::parse(&text, Path::new("generic.yaml"), &|_| Some(TOKEN.into()))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    GenericSource::new(config.sources[0].clone())
        .expect("the source builds")
        .with_backoff_base(Duration::from_millis(1))
}

async fn poll_ok(source: &GenericSource, upstream: &FakeUpstream) -> PollOutcome {
    match source.poll().await {
        Ok(outcome) => outcome,
        Err(e) => panic!(
            "expected a successful poll, got {e} ({:?}); requests: {:#?}",
            e.reason(),
            upstream.seen()
        ),
    }
}

async fn poll_err(source: &GenericSource) -> UpstreamError {
    match source.poll().await {
        Ok(outcome) => panic!("expected a failed poll, got {outcome:#?}"),
        Err(e) => e,
    }
}

fn ids(outcome: &PollOutcome) -> Vec<&str> {
    outcome.agents.iter().map(|a| a.id.as_str()).collect()
}

fn by_id<'a>(outcome: &'a PollOutcome, id: &str) -> &'a Agent {
    outcome
        .agents
        .iter()
        .find(|a| a.id == id)
        .unwrap_or_else(|| panic!("no agent {id} in {outcome:#?}"))
}

const FLAT: &str = "      path: /v1/agents
      fields: { id: id, name: name, heartbeat: seen, created_at: created, token_rotated_at: rotated }
";

#[tokio::test]
async fn epoch_seconds_milliseconds_and_rfc_3339_text_read_as_the_same_instant() {
    let upstream = FakeUpstream::start(|_| {
        vec![Reply::json(json!([
            {"id": "s", "name": "secs", "seen": 1_700_000_000, "created": 1_600_000_000.5},
            {"id": "ms", "name": "millis", "seen": 1_700_000_000_000u64, "created": 1_600_000_000_500u64},
            {"id": "t", "name": "text", "seen": "2023-11-14T22:13:20Z", "created": "2020-09-13T12:26:40.5Z"},
            {"id": "d", "name": "digits", "seen": "1700000000000", "created": "1600000000"},
            {"id": "x", "name": "junk", "seen": "yesterday", "created": true, "rotated": "2024-01-01T00:00:00Z"},
        ]))]
    })
    .await;
    let outcome = poll_ok(&source(&upstream.base, FLAT), &upstream).await;
    let instant: Timestamp = "2023-11-14T22:13:20Z".parse().unwrap();
    for id in ["s", "ms", "t", "d"] {
        assert_eq!(
            by_id(&outcome, id).last_heartbeat,
            Some(instant),
            "{id}: {outcome:#?}"
        );
    }
    let created: Timestamp = "2020-09-13T12:26:40.5Z".parse().unwrap();
    for id in ["s", "ms", "t"] {
        let a = by_id(&outcome, id);
        assert_eq!(a.created_at, Some(created), "{id}");
        assert_eq!(
            a.token_rotated,
            Some(created),
            "{id}: the token is as old as the agent"
        );
    }
    let junk = by_id(&outcome, "x");
    assert_eq!((junk.last_heartbeat, junk.created_at), (None, None));
    assert_eq!(
        junk.token_rotated,
        Some("2024-01-01T00:00:00Z".parse().unwrap())
    );
}

#[tokio::test]
async fn a_bare_array_and_nested_items_with_nested_fields_are_read_and_nothing_else_is_kept() {
    let upstream = FakeUpstream::start(|_| {
        vec![Reply::json(json!({
            "meta": {"count": 2},
            "result": {"agents": [
                {"agent": {"id": 7, "displayName": "boomi-atom-1"}, "location": {"site": "fra"},
                 "accessToken": TOKEN, "state": {"lastPing": 1_700_000_000}, "runtime": {"version": "5.1"}},
                {"agent": {"id": "b"}, "location": {"site": {"nested": "object"}}, "accessToken": TOKEN},
                "not a record",
            ]},
        }))]
    })
    .await;
    let nested = "      path: /v1/agents
      items: result.agents
      fields:
        id: agent.id
        name: agent.displayName
        heartbeat: state.lastPing
        version: runtime.version
        labels: { site: location.site, zone: location.zone }
";
    let outcome = poll_ok(&source(&upstream.base, nested), &upstream).await;
    assert_eq!(ids(&outcome), ["7", "b"]);
    assert_eq!(
        outcome.stats.invalid_records, 1,
        "the string is skipped and counted"
    );
    let a = by_id(&outcome, "7");
    assert_eq!(
        (a.name.as_str(), a.version.as_deref()),
        ("boomi-atom-1", Some("5.1"))
    );
    assert_eq!(
        a.info,
        vec![("site", "fra".to_string()), ("zone", String::new())]
    );
    // A record missing an optional field only lacks it.
    let b = by_id(&outcome, "b");
    assert_eq!(
        (b.name.as_str(), b.version.as_deref(), b.last_heartbeat),
        ("", None, None)
    );
    assert_eq!(
        b.info,
        vec![("site", String::new()), ("zone", String::new())]
    );
    assert!(!format!("{outcome:?}").contains(TOKEN));

    let bare = FakeUpstream::start(|_| vec![Reply::json(json!([{"id": "a", "name": "A"}]))]).await;
    let outcome = poll_ok(
        &source(&bare.base, "      fields: { id: id, name: name }\n"),
        &bare,
    )
    .await;
    assert_eq!(ids(&outcome), ["a"]);
    assert_eq!(bare.targets(), ["/"], "an empty path is base_url itself");
    let seen = &bare.seen()[0];
    assert_eq!(
        seen.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn items_that_are_not_an_array_fail_the_poll_naming_the_key() {
    let upstream = FakeUpstream::start(|_| vec![Reply::json(json!({"data": {"id": "a"}}))]).await;
    let e = poll_err(&source(
        &upstream.base,
        "      items: data\n      fields: { id: id, name: name }\n",
    ))
    .await;
    assert_eq!(e.reason(), ErrorReason::Decode, "{e}");
    assert!(
        e.to_string()
            .contains("sources[0].generic.items: the body has no array at \"data\""),
        "{e}"
    );
}

const CURSOR: &str = "      path: /v1/agents
      query: { status: all }
      pagination: { type: cursor, param: page, next: meta.next }
      items: data
      fields: { id: id, name: name }
";

#[tokio::test]
async fn cursor_pagination_follows_the_cursor_until_it_ends_and_refuses_a_cursor_seen_before() {
    let page = |ids: &[&str], next: serde_json::Value| {
        let data: Vec<_> = ids.iter().map(|id| json!({"id": id, "name": id})).collect();
        Reply::json(json!({"data": data, "meta": {"next": next}}))
    };
    let upstream = FakeUpstream::route(move |target| match target {
        "/v1/agents?status=all" => page(&["a", "b"], json!("c2")),
        "/v1/agents?status=all&page=c2" => page(&["c"], json!(3)),
        "/v1/agents?status=all&page=3" => page(&["d"], json!(null)),
        _ => Reply::status(404),
    })
    .await;
    let outcome = poll_ok(&source(&upstream.base, CURSOR), &upstream).await;
    assert_eq!(ids(&outcome), ["a", "b", "c", "d"]);
    assert_eq!(outcome.stats.pages, 3);

    let looping = FakeUpstream::route(move |target| match target {
        "/v1/agents?status=all" => page(&["a"], json!("c2")),
        "/v1/agents?status=all&page=c2" => page(&["b"], json!("c3")),
        _ => page(&["c"], json!("c2")),
    })
    .await;
    let e = poll_err(&source(&looping.base, CURSOR)).await;
    assert_eq!(e.reason(), ErrorReason::PaginationLoop, "{e}");
    assert_eq!(looping.targets().len(), 3, "{:?}", looping.targets());
}

const LINKED: &str = "      path: /v1/agents
      fields: { id: id, name: name }
";

#[tokio::test]
async fn link_pagination_follows_relative_links_and_refuses_a_loop() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::json(json!([{"id": "a", "name": "A"}])).next("/v1/agents?skip=1"),
            Reply::json(json!([{"id": "b", "name": "B"}])).next("agents?skip=2"),
            Reply::json(json!([{"id": "c", "name": "C"}])),
        ]
    })
    .await;
    let outcome = poll_ok(&source(&upstream.base, LINKED), &upstream).await;
    assert_eq!(ids(&outcome), ["a", "b", "c"]);
    assert_eq!(
        upstream.targets(),
        ["/v1/agents", "/v1/agents?skip=1", "/v1/agents?skip=2"]
    );

    let looping = FakeUpstream::start(|_| {
        vec![Reply::json(json!([{"id": "a", "name": "A"}])).next("/v1/agents?skip=1")]
    })
    .await;
    let e = poll_err(&source(&looping.base, LINKED)).await;
    assert_eq!(e.reason(), ErrorReason::PaginationLoop, "{e}");

    // `none` makes one request whatever the headers say.
    let unpaged = "      pagination: { type: none }\n      fields: { id: id, name: name }\n";
    let outcome = poll_ok(&source(&looping.base, unpaged), &looping).await;
    assert_eq!(ids(&outcome), ["a"]);
    assert_eq!(outcome.stats.pages, 1);
}

#[tokio::test]
async fn a_next_link_or_a_redirect_to_another_origin_never_gets_the_token() {
    let elsewhere = FakeUpstream::start(|_| vec![Reply::json(json!([]))]).await;
    let other = elsewhere.base.join("v1/agents?skip=1").unwrap();
    let upstream = FakeUpstream::start(|_| {
        vec![Reply::json(json!([{"id": "a", "name": "A"}])).next(other.clone())]
    })
    .await;
    let e = poll_err(&source(&upstream.base, LINKED)).await;
    assert_eq!(e.reason(), ErrorReason::Decode, "{e}");
    assert!(e.to_string().contains("another host"), "{e}");

    let redirecting =
        FakeUpstream::start(|_| vec![Reply::status(302).header("location", other.to_string())])
            .await;
    let e = poll_err(&source(&redirecting.base, LINKED)).await;
    assert_eq!(e.reason(), ErrorReason::Http4xx, "{e}");
    assert!(
        elsewhere.seen().is_empty(),
        "the other origin was called: {:?}",
        elsewhere.seen()
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_and_a_custom_auth_header_is_sent() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::status(429).header("retry-after", "0"),
            Reply::json(json!([{"id": "a", "name": "A"}])),
        ]
    })
    .await;
    let custom = "      auth: { header: X-Project-Token, prefix: \"\" }
      fields: { id: id, name: name }
";
    let outcome = poll_ok(&source(&upstream.base, custom), &upstream).await;
    assert_eq!(ids(&outcome), ["a"]);
    assert_eq!(outcome.stats.requests, 2);
    for seen in upstream.seen() {
        assert_eq!(seen.project_token.as_deref(), Some(TOKEN), "{seen:?}");
        assert_eq!(seen.authorization, None, "{seen:?}");
    }
}

#[tokio::test]
async fn offline_by_value_list_matches_case_insensitively_and_a_flag_only_on_true() {
    let upstream = FakeUpstream::start(|_| {
        vec![Reply::json(json!([
            {"id": "a", "name": "A", "status": "STOPPED", "down": "true"},
            {"id": "b", "name": "B", "status": "offline", "down": true},
            {"id": "c", "name": "C", "status": "running", "down": false},
            {"id": "d", "name": "D"},
        ]))]
    })
    .await;
    let values = "      fields:
        id: id
        name: name
        offline: { field: status, values: [offline, stopped] }
";
    let outcome = poll_ok(&source(&upstream.base, values), &upstream).await;
    let offline: Vec<bool> = outcome.agents.iter().map(|a| a.offline).collect();
    assert_eq!(offline, [true, true, false, false]);
    let flag = "      fields: { id: id, name: name, offline: down }\n";
    let outcome = poll_ok(&source(&upstream.base, flag), &upstream).await;
    let offline: Vec<bool> = outcome.agents.iter().map(|a| a.offline).collect();
    assert_eq!(offline, [false, true, false, false]);
}

#[tokio::test]
async fn a_required_field_or_the_heartbeat_that_no_record_carries_fails_the_poll_naming_key_and_path()
 {
    let upstream = FakeUpstream::start(|_| {
        vec![Reply::json(json!([
            {"_id": "a", "name": "A", "lastSeen": "2025-01-01T00:00:00Z"},
            {"_id": "b", "name": "B", "lastSeen": null},
        ]))]
    })
    .await;
    let wrong = "      fields: { id: _id, name: name, heartbeat: lastHeartbeatAt }\n";
    let e = poll_err(&source(&upstream.base, wrong)).await;
    assert_eq!(e.reason(), ErrorReason::Decode);
    assert!(
        e.to_string()
            .ends_with("sources[0].generic.fields.heartbeat: no record has \"lastHeartbeatAt\""),
        "{e}"
    );
    let wrong = "      fields: { id: id, name: name }\n";
    let e = poll_err(&source(&upstream.base, wrong)).await;
    assert!(
        e.to_string()
            .ends_with("sources[0].generic.fields.id: no record has \"id\""),
        "{e}"
    );
    // A null counts as carried: the path is right, the agent just has no heartbeat.
    let right = "      fields: { id: _id, name: name, heartbeat: lastSeen }\n";
    let outcome = poll_ok(&source(&upstream.base, right), &upstream).await;
    assert_eq!(by_id(&outcome, "b").last_heartbeat, None);
    assert!(by_id(&outcome, "a").last_heartbeat.is_some());
    // An empty page has nothing to check.
    let empty = FakeUpstream::start(|_| vec![Reply::json(json!([]))]).await;
    let outcome = poll_ok(&source(&empty.base, wrong), &empty).await;
    assert!(outcome.agents.is_empty());
}

#[tokio::test]
async fn a_hostile_page_costs_only_its_bad_records_and_keeps_strings_within_their_caps() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge = "n".repeat(2_000_000);
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"data\":[");
    body.extend_from_slice(
        format!(
            "{{\"id\":\"{huge}\",\"name\":\"{huge}\",\"site\":\"{huge}\",\"junk\":{deep}}},\
             {{\"id\":\"deep\",\"name\":{deep},\"site\":{{\"a\":{deep}}}}},"
        )
        .as_bytes(),
    );
    body.extend_from_slice(b"{\"id\":\"bad\xff\",\"name\":\"x\"},{\"id\":\"big\",\"name\":1e999},");
    body.extend_from_slice(b"{\"id\":\"ok\",\"name\":\"fine\",\"secret\":\"\xfe\"}],\"meta\":{}}");
    let upstream = FakeUpstream::start(move |_| vec![Reply::raw(200, body.clone())]).await;
    let hostile = "      items: data
      fields: { id: id, name: name, labels: { site: site } }
";
    let outcome = poll_ok(&source(&upstream.base, hostile), &upstream).await;
    assert_eq!(outcome.agents.len(), 3, "{:?}", ids(&outcome));
    let first = &outcome.agents[0];
    assert_eq!((first.id.len(), first.name.len()), (1024, 1024));
    assert!(first.name.ends_with('…'));
    assert_eq!(first.info[0].1.len(), 256, "label values are cut shorter");
    let deep = by_id(&outcome, "deep");
    assert_eq!((deep.name.as_str(), deep.info[0].1.as_str()), ("", ""));
    assert!(by_id(&outcome, "ok").name == "fine");
    assert_eq!(
        outcome.stats.invalid_records, 2,
        "the bad UTF-8 and the 1e999 records"
    );
}

#[tokio::test]
async fn the_page_cap_and_the_body_cap_fail_the_poll_as_for_the_built_in_sources() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::json(json!([{"id": "a", "name": "A"}])).next("/v1/agents?skip=1"),
            Reply::json(json!([{"id": "b", "name": "B"}])).next("/v1/agents?skip=2"),
            Reply::json(json!([{"id": "c", "name": "C"}])),
        ]
    })
    .await;
    let e = poll_err(&source_with(&upstream.base, "    max_pages: 2\n", LINKED)).await;
    assert_eq!(e.reason(), ErrorReason::PageLimit, "{e}");
    assert_eq!(upstream.targets().len(), 2, "{:?}", upstream.targets());

    let big = format!(r#"[{{"id":"a","name":"{}"}}]"#, "n".repeat(4096));
    let upstream = FakeUpstream::start(move |_| vec![Reply::raw(200, big.clone())]).await;
    let e = poll_err(&source_with(
        &upstream.base,
        "    max_body_bytes: 1024\n",
        LINKED,
    ))
    .await;
    assert_eq!(e.reason(), ErrorReason::BodyTooLarge, "{e}");
}
