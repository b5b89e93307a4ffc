use std::path::Path;

use super::*;
use crate::config::Config;
use crate::sources::record::Scalar;

/// The validated generic block of a one-source config whose `generic:` block is `block` (indented by six spaces).
fn generic(block: &str) -> Arc<GenericConfig> {
    let text = format!(
        "sources:\n  - name: acct\n    provider: generic\n    base_url: https://api.example.com/proxy/\n    \
         token_env: T\n    generic:\n{block}"
    );
    let config = Config::parse(&text, Path::new("t.yaml"), &|_| Some("tok".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    config.sources[0].generic.clone().expect("a generic block")
}

#[test]
fn epoch_numbers_below_1e11_are_seconds_and_from_it_milliseconds() {
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    for (value, want) in [
        (Scalar::Num(0.0), Some(at("1970-01-01T00:00:00Z"))),
        (
            Scalar::Num(99_999_999_999.0),
            Some(at("5138-11-16T09:46:39Z")),
        ),
        (
            Scalar::Num(100_000_000_000.0),
            Some(at("1973-03-03T09:46:40Z")),
        ),
        (
            Scalar::Num(1_733_300_000_123.0),
            Some(at("2024-12-04T08:13:20.123Z")),
        ),
        (
            Scalar::Num(1_733_300_000.5),
            Some(at("2024-12-04T08:13:20.5Z")),
        ),
        (Scalar::Num(-86_400.0), Some(at("1969-12-31T00:00:00Z"))),
        (
            Scalar::Str("1733300000".into()),
            Some(at("2024-12-04T08:13:20Z")),
        ),
        (
            Scalar::Str("2024-12-04T09:13:20+01:00".into()),
            Some(at("2024-12-04T08:13:20Z")),
        ),
        (Scalar::Num(1e300), None),
        (Scalar::Str("1.5e9".into()), None),
        (Scalar::Str("soon".into()), None),
        (Scalar::Bool(true), None),
        (Scalar::Other, None),
    ] {
        assert_eq!(timestamp(value.clone()), want, "{value:?}");
    }
}

#[test]
fn the_first_page_keeps_the_base_path_and_the_cursor_replaces_its_parameter() {
    let config = generic(
        "      path: /v1/agents\n      query: { status: all, limit: 50 }\n      fields: { id: id, name: name }\n",
    );
    let base = Url::parse("https://api.example.com/proxy/").unwrap();
    let first = first_page(&base, &config);
    assert_eq!(
        first.as_str(),
        "https://api.example.com/proxy/v1/agents?status=all&limit=50"
    );
    let second = with_param(&first, "cursor", "a b&c");
    let third = with_param(&second, "cursor", "d");
    assert_eq!(
        third.as_str(),
        "https://api.example.com/proxy/v1/agents?status=all&limit=50&cursor=d"
    );
}

#[test]
fn a_page_keeps_only_the_mapped_fields_and_two_fields_may_read_one_path() {
    let config = generic(
        "      items: data\n      fields:\n        id: id\n        name: name\n        \
         offline: { field: status, values: [down] }\n        labels: { status: status, site: where.site }\n",
    );
    let plan = Plan::new(&config);
    let url = Url::parse("https://api.example.com/v1/agents").unwrap();
    let body =
        br#"{"data":[{"id":"a","name":"A","status":"DOWN","where":{"site":"fra","key":"hunter2"},
        "accessToken":"hunter2","nested":{"token":"hunter2"}}],"meta":{"token":"hunter2"}}"#;
    let mut agents = Vec::new();
    let read = read_page(body, &url, "acct", &plan, &config, &mut agents).unwrap();
    assert_eq!(read, PageRead::default());
    let a = &agents[0];
    assert!(a.offline);
    assert_eq!(
        a.info,
        vec![("status", "DOWN".to_string()), ("site", "fra".to_string())]
    );
    assert!(!format!("{agents:?}").contains("hunter2"));
}

#[test]
fn a_body_that_is_not_json_fails_without_quoting_it_and_leaves_the_list_as_it_was() {
    let config = generic("      fields: { id: id, name: name }\n");
    let plan = Plan::new(&config);
    let url = Url::parse("https://api.example.com/v1/agents").unwrap();
    let mut agents = vec![Agent::new("kept", "")];
    for body in [
        &b"[{\"id\":\"hunter2\""[..],
        b"{\"id\":\"hunter2\"}",
        b"hunter2",
        b"",
    ] {
        let e = read_page(body, &url, "acct", &plan, &config, &mut agents).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(agents.len(), 1);
    }
}
