//! The `generic` block of a `sources[]` entry with `provider: generic`: any vendor's agent list described in the
//! config (where the list is, how to authenticate and page through it, and which field of a record means what),
//! validated into [`GenericConfig`].
//!
//! Field paths are dotted (`location.site`): each segment is an object key, so a key that itself holds a dot cannot
//! be named. A path is at most [`MAX_PATH_SEGMENTS`] segments and [`MAX_PATH_BYTES`] bytes.
//!
//! **Secret-looking paths.** A path with a segment whose name contains `token`, `secret`, `password`, `passwd`,
//! `credential` or `key` (case-insensitive; `__accessTokenLastModifiedAt` and `apiKey` both count) is refused for
//! `id`, `name`, `version`, `offline` and `labels`, because their values are shown in metrics, pages, alerts and mails.
//! It is accepted for the timestamp fields (`heartbeat`, `token_rotated_at`, `created_at`) and for the cursor
//! (`pagination.next`): a timestamp field's value is only ever kept when it parses as a timestamp, and is never
//! echoed, not even in a debug log; a cursor is sent back only to the same origin and not shown.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use crate::config::parse::{ConfigError, Located};
use crate::domain::Label;

/// The most segments a field path may have.
pub const MAX_PATH_SEGMENTS: usize = 16;

/// The longest field path, bytes.
pub const MAX_PATH_BYTES: usize = 256;

/// The most extra labels one generic source may put on `onprem_agent_info`. Each is a label on every agent's info
/// series; more than a handful would make the series unwieldy for no gain.
pub const MAX_LABELS: usize = 16;

/// The most values an `offline: { field, values }` may list.
pub const MAX_OFFLINE_VALUES: usize = 32;

/// The most extra query parameters.
pub const MAX_QUERY_PARAMETERS: usize = 32;

/// The longest `provider_label`, bytes.
pub const MAX_PROVIDER_LABEL_BYTES: usize = 64;

/// Label names a generic source may not use for its extra labels: the ones every agent series already carries
/// (`account`, `provider`, `agent_id`, `agent_name`), the info series' own `version`, and the two Prometheus sets at
/// scrape time (`job`, `instance`), which would come back renamed `exported_*`.
pub const RESERVED_LABELS: &[&str] = &[
    "account",
    "provider",
    "agent_id",
    "agent_name",
    "version",
    "job",
    "instance",
];

/// Fragments of a path segment that make it look like it holds a secret (compared case-insensitively).
const SECRET_WORDS: &[&str] = &["token", "secret", "password", "passwd", "credential", "key"];

/// A validated generic source.
#[derive(Debug, Clone, PartialEq)]
pub struct GenericConfig {
    /// The key path of this block (`sources[2].generic`), which poll errors name.
    pub key: String,
    /// The list's path, joined to `base_url` (`/v1/agents`); empty for `base_url` itself.
    pub path: String,
    /// The auth header's name (`Authorization`), already checked to be a valid header name.
    pub auth_header: String,
    /// What goes before the token in the header (`Bearer `); visible ASCII and spaces only.
    pub auth_prefix: String,
    /// Extra query parameters of every request, in the order written.
    pub query: Vec<(String, String)>,
    /// How the list is paged.
    pub pagination: Pagination,
    /// Where the array of records is in the body; `None`: the body is the array.
    pub items: Option<FieldPath>,
    /// The `provider` label of this source's series.
    pub provider_label: Label,
    /// Which record field means what.
    pub fields: GenericFields,
    /// When set, an agent whose heartbeat is older than this (or that has none) also counts as offline, as the
    /// built-in Planasonix source decides.
    pub offline_after: Option<Duration>,
}

/// How a generic list is paged.
#[derive(Debug, Clone, PartialEq)]
pub enum Pagination {
    /// `Link: <…>; rel="next"` headers (RFC 8288), relative or absolute, same origin only.
    Link,
    /// A cursor in the body: the next request is the first one with `param=<cursor>`; an absent, `null` or empty
    /// cursor ends the list.
    Cursor {
        /// The query parameter the cursor is sent back in.
        param: String,
        /// Where the next cursor is in the page body.
        next: FieldPath,
    },
    /// One request; the list is never paged.
    None,
}

/// The record fields of a generic source.
#[derive(Debug, Clone, PartialEq)]
pub struct GenericFields {
    /// The agent id (`agent_id`); a record without one is skipped and counted as an invalid record.
    pub id: FieldPath,
    /// The agent name (`agent_name`); a record without one gets an empty name.
    pub name: FieldPath,
    /// The last heartbeat, a timestamp.
    pub heartbeat: Option<FieldPath>,
    /// The platform's offline verdict.
    pub offline: Option<Offline>,
    /// The agent software version.
    pub version: Option<FieldPath>,
    /// When the agent's token was last rotated, a timestamp.
    pub token_rotated_at: Option<FieldPath>,
    /// When the agent was registered, a timestamp; also the token's date for a record without `token_rotated_at`.
    pub created_at: Option<FieldPath>,
    /// Extra labels of `onprem_agent_info`, in the order written.
    pub labels: Vec<(Label, FieldPath)>,
}

/// How a generic source reads the platform's offline verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Offline {
    /// A boolean field: `true` is offline; any other value or none is not.
    Flag(FieldPath),
    /// A text field: offline if and only if it equals one of the values, ASCII case-insensitively.
    Values {
        field: FieldPath,
        values: Vec<String>,
    },
}

/// A dotted path into a JSON object, split into its segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    /// The path as written, trimmed (`location.site`), for messages.
    pub text: String,
    /// Its segments (`["location", "site"]`), none empty.
    pub segments: Vec<String>,
}

impl FieldPath {
    /// Returns true if and only if a segment's name contains one of the secret-looking words; see the module
    /// documentation.
    pub fn looks_secret(&self) -> bool {
        self.segments.iter().any(|s| {
            let s = s.to_ascii_lowercase();
            SECRET_WORDS.iter().any(|w| s.contains(w))
        })
    }

    /// Returns true if and only if `self` is `other` or lies inside it.
    fn within(&self, other: &FieldPath) -> bool {
        self.segments.starts_with(&other.segments)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The `generic` block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeneric {
    path: Option<Spanned<String>>,
    auth: Option<Spanned<RawAuth>>,
    query: Option<Spanned<OrderedMap>>,
    pagination: Option<Spanned<RawPagination>>,
    items: Option<Spanned<String>>,
    provider_label: Option<Spanned<String>>,
    offline_after: Option<Spanned<String>>,
    fields: Spanned<RawFields>,
}

/// `generic.auth` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    header: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
}

/// `generic.pagination` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPagination {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    param: Option<Spanned<String>>,
    next: Option<Spanned<String>>,
}

/// `generic.fields` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFields {
    id: Spanned<String>,
    name: Spanned<String>,
    heartbeat: Option<Spanned<String>>,
    offline: Option<Spanned<RawOffline>>,
    version: Option<Spanned<String>>,
    token_rotated_at: Option<Spanned<String>>,
    created_at: Option<Spanned<String>>,
    labels: Option<Spanned<OrderedMap>>,
}

/// `fields.offline` as written: a path, or `{ field, values }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawOffline {
    Flag(String),
    Values(RawOfflineValues),
}

/// `fields.offline` as `{ field, values }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOfflineValues {
    field: String,
    values: Vec<Text>,
}

/// A YAML scalar read as text: `all`, `100` and `true` are all fine as a query value or an offline value.
#[derive(Debug)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(TextVisitor)
    }
}

/// A YAML mapping of names to scalars, in the order written (`labels` keep their order on the info series). A name
/// written twice is refused rather than silently taking the last value.
#[derive(Debug)]
struct OrderedMap(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OrderedMap, D::Error> {
        struct MapVisitor(PhantomData<OrderedMap>);
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = OrderedMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedMap, A::Error> {
                let mut entries: Vec<(String, String)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Text>()? {
                    if entries.iter().any(|(seen, _)| *seen == k) {
                        return Err(de::Error::custom(format!("{k:?} is written twice")));
                    }
                    entries.push((k, v.0));
                }
                Ok(OrderedMap(entries))
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

/// Validates the `generic` block at key path `key` (`sources[2].generic`).
pub fn validate(
    ctx: &Located<'_>,
    key: &str,
    raw: &Spanned<RawGeneric>,
) -> Result<GenericConfig, ConfigError> {
    let g = &raw.value;
    let path = match &g.path {
        None => String::new(),
        Some(p) => {
            let text = p.value.trim();
            if text.contains(['?', '#']) || text.chars().any(|c| c.is_control()) {
                return Err(ctx.at(
                    p.referenced.line(),
                    format!("{key}.path"),
                    "must be a plain path; put query parameters in generic.query",
                ));
            }
            text.to_string()
        }
    };
    let (auth_header, auth_prefix) = auth(ctx, key, g.auth.as_ref())?;
    let query = match &g.query {
        None => Vec::new(),
        Some(q) => {
            if q.value.0.len() > MAX_QUERY_PARAMETERS {
                return Err(ctx.at(
                    q.referenced.line(),
                    format!("{key}.query"),
                    format!("at most {MAX_QUERY_PARAMETERS} parameters"),
                ));
            }
            for (name, _) in &q.value.0 {
                let lowered = name.to_ascii_lowercase();
                if name.trim().is_empty() {
                    return Err(ctx.at(
                        q.referenced.line(),
                        format!("{key}.query"),
                        "a parameter name is empty",
                    ));
                }
                if SECRET_WORDS.iter().any(|w| lowered.contains(w)) {
                    return Err(ctx.at(
                        q.referenced.line(),
                        format!("{key}.query.{name}"),
                        "a credential does not belong in the query string or the config file; send the token with \
                         generic.auth (its value is not repeated here)",
                    ));
                }
            }
            q.value.0.clone()
        }
    };
    let items = g
        .items
        .as_ref()
        .map(|i| field_path(ctx, &format!("{key}.items"), i.referenced.line(), &i.value))
        .transpose()?;
    let pagination = pagination(ctx, key, g.pagination.as_ref(), items.as_ref())?;
    if let Pagination::Cursor { param, .. } = &pagination
        && let Some(q) = &g.query
        && q.value.0.iter().any(|(name, _)| name == param)
    {
        return Err(ctx.at(
            q.referenced.line(),
            format!("{key}.query.{param}"),
            "is also pagination.param; the cursor parameter is set by the pager",
        ));
    }
    let provider_label = match &g.provider_label {
        None => Label::new("generic"),
        Some(l) => {
            let text = l.value.trim();
            let valid = !text.is_empty()
                && text.len() <= MAX_PROVIDER_LABEL_BYTES
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !valid {
                return Err(ctx.at(
                    l.referenced.line(),
                    format!("{key}.provider_label"),
                    format!(
                        "{:?} is not a provider label: 1 to {MAX_PROVIDER_LABEL_BYTES} letters, digits, '_', '-' or '.'",
                        l.value
                    ),
                ));
            }
            Label::new(text)
        }
    };
    let offline_after = match &g.offline_after {
        None => None,
        Some(d) => Some(ctx.positive_duration(
            &Some(d.clone()),
            format!("{key}.offline_after"),
            Duration::ZERO,
        )?),
    };
    let fields = fields(ctx, &format!("{key}.fields"), &g.fields)?;
    if offline_after.is_some() && fields.heartbeat.is_none() {
        return Err(ctx.at(
            g.offline_after
                .as_ref()
                .map_or(raw.referenced.line(), |d| d.referenced.line()),
            format!("{key}.offline_after"),
            "needs fields.heartbeat: the heartbeat's age decides",
        ));
    }
    Ok(GenericConfig {
        key: key.to_string(),
        path,
        auth_header,
        auth_prefix,
        query,
        pagination,
        items,
        provider_label,
        fields,
        offline_after,
    })
}

/// `generic.auth`: the header name and the prefix, `Authorization` and `Bearer ` by default.
fn auth(
    ctx: &Located<'_>,
    key: &str,
    raw: Option<&Spanned<RawAuth>>,
) -> Result<(String, String), ConfigError> {
    let mut header = "Authorization".to_string();
    let mut prefix = "Bearer ".to_string();
    let Some(raw) = raw else {
        return Ok((header, prefix));
    };
    if let Some(h) = &raw.value.header {
        let name = h.value.trim();
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ctx.at(
                h.referenced.line(),
                format!("{key}.auth.header"),
                format!("{name:?} is not an HTTP header name"),
            ));
        }
        header = name.to_string();
    }
    if let Some(p) = &raw.value.prefix {
        // Not trimmed: `Bearer ` needs its space. Only what a header value may hold, so the request can be built.
        if !p.value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) || p.value.len() > 64 {
            return Err(ctx.at(
                p.referenced.line(),
                format!("{key}.auth.prefix"),
                "at most 64 visible ASCII characters and spaces",
            ));
        }
        prefix = p.value.clone();
    }
    Ok((header, prefix))
}

/// `generic.pagination`; `link` when absent.
fn pagination(
    ctx: &Located<'_>,
    key: &str,
    raw: Option<&Spanned<RawPagination>>,
    items: Option<&FieldPath>,
) -> Result<Pagination, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Pagination::Link);
    };
    let p = &raw.value;
    let line = p.kind.referenced.line();
    let kind = p.kind.value.trim();
    let refuse_extra = |what: &Option<Spanned<String>>, name: &str| match what {
        Some(v) => Err(ctx.at(
            v.referenced.line(),
            format!("{key}.pagination.{name}"),
            format!("applies only to pagination type cursor, not {kind}"),
        )),
        None => Ok(()),
    };
    match kind {
        "link" | "none" => {
            refuse_extra(&p.param, "param")?;
            refuse_extra(&p.next, "next")?;
            Ok(if kind == "link" {
                Pagination::Link
            } else {
                Pagination::None
            })
        }
        "cursor" => {
            let (Some(param), Some(next)) = (&p.param, &p.next) else {
                return Err(ctx.at(
                    line,
                    format!("{key}.pagination"),
                    "type cursor needs param (the query parameter) and next (the cursor's path in the body)",
                ));
            };
            let name = param.value.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ctx.at(
                    param.referenced.line(),
                    format!("{key}.pagination.param"),
                    "must be a query parameter name",
                ));
            }
            let next_key = format!("{key}.pagination.next");
            let next_path = field_path(ctx, &next_key, next.referenced.line(), &next.value)?;
            let Some(items) = items else {
                return Err(ctx.at(
                    line,
                    format!("{key}.pagination"),
                    "type cursor needs items: a body that is a bare array has nowhere to hold a cursor",
                ));
            };
            if next_path.within(items) || items.within(&next_path) {
                return Err(ctx.at(
                    next.referenced.line(),
                    next_key,
                    format!("the cursor's path {next_path} overlaps items ({items})"),
                ));
            }
            Ok(Pagination::Cursor {
                param: name.to_string(),
                next: next_path,
            })
        }
        other => Err(ctx.at(
            line,
            format!("{key}.pagination.type"),
            format!("unknown pagination type {other:?}; expected link, cursor or none"),
        )),
    }
}

/// `generic.fields`.
fn fields(
    ctx: &Located<'_>,
    key: &str,
    raw: &Spanned<RawFields>,
) -> Result<GenericFields, ConfigError> {
    let f = &raw.value;
    // A field shown as text (or deciding the offline state) must not read a secret-looking path.
    let shown = |s: &Spanned<String>, name: &str| -> Result<FieldPath, ConfigError> {
        let path = field_path(ctx, &format!("{key}.{name}"), s.referenced.line(), &s.value)?;
        refuse_secret(ctx, &format!("{key}.{name}"), s.referenced.line(), &path)?;
        Ok(path)
    };
    let timestamp = |s: &Option<Spanned<String>>, name: &str| {
        s.as_ref()
            .map(|s| field_path(ctx, &format!("{key}.{name}"), s.referenced.line(), &s.value))
            .transpose()
    };
    let offline = match &f.offline {
        None => None,
        Some(o) => {
            let line = o.referenced.line();
            let okey = format!("{key}.offline");
            Some(match &o.value {
                RawOffline::Flag(text) => {
                    let path = field_path(ctx, &okey, line, text)?;
                    refuse_secret(ctx, &okey, line, &path)?;
                    Offline::Flag(path)
                }
                RawOffline::Values(v) => {
                    let fkey = format!("{okey}.field");
                    let field = field_path(ctx, &fkey, line, &v.field)?;
                    refuse_secret(ctx, &fkey, line, &field)?;
                    if v.values.is_empty() || v.values.len() > MAX_OFFLINE_VALUES {
                        return Err(ctx.at(
                            line,
                            format!("{okey}.values"),
                            format!("list 1 to {MAX_OFFLINE_VALUES} values"),
                        ));
                    }
                    Offline::Values {
                        field,
                        values: v.values.iter().map(|t| t.0.trim().to_string()).collect(),
                    }
                }
            })
        }
    };
    let mut labels = Vec::new();
    if let Some(l) = &f.labels {
        let line = l.referenced.line();
        if l.value.0.len() > MAX_LABELS {
            return Err(ctx.at(
                line,
                format!("{key}.labels"),
                format!("at most {MAX_LABELS} labels"),
            ));
        }
        for (name, path) in &l.value.0 {
            let lkey = format!("{key}.labels.{name}");
            if !is_label_name(name) {
                return Err(ctx.at(
                    line,
                    lkey,
                    format!(
                        "{name:?} is not a Prometheus label name (a letter or '_', then letters, digits or '_', and \
                         not starting with '__')"
                    ),
                ));
            }
            if RESERVED_LABELS.contains(&name.as_str()) {
                return Err(ctx.at(
                    line,
                    lkey,
                    format!(
                        "{name:?} is already a label of the agent series; choose another name (reserved: {})",
                        RESERVED_LABELS.join(", ")
                    ),
                ));
            }
            let path = field_path(ctx, &lkey, line, path)?;
            refuse_secret(ctx, &lkey, line, &path)?;
            labels.push((Label::new(name), path));
        }
    }
    Ok(GenericFields {
        id: shown(&f.id, "id")?,
        name: shown(&f.name, "name")?,
        heartbeat: timestamp(&f.heartbeat, "heartbeat")?,
        offline,
        version: f
            .version
            .as_ref()
            .map(|v| shown(v, "version"))
            .transpose()?,
        token_rotated_at: timestamp(&f.token_rotated_at, "token_rotated_at")?,
        created_at: timestamp(&f.created_at, "created_at")?,
        labels,
    })
}

/// Refuses a secret-looking path for a field whose value would be shown.
fn refuse_secret(
    ctx: &Located<'_>,
    key: &str,
    line: u64,
    path: &FieldPath,
) -> Result<(), ConfigError> {
    if path.looks_secret() {
        return Err(ctx.at(
            line,
            key,
            format!(
                "{:?} looks like it holds a secret (a segment contains {}); its value would be shown in \
                 metrics, pages and alerts, so it cannot be read here",
                path.text,
                SECRET_WORDS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Parses a dotted field path: 1 to [`MAX_PATH_SEGMENTS`] non-empty segments, at most [`MAX_PATH_BYTES`] bytes, no
/// control characters.
fn field_path(
    ctx: &Located<'_>,
    key: &str,
    line: u64,
    text: &str,
) -> Result<FieldPath, ConfigError> {
    let text = text.trim();
    let fail = |why: &str| ctx.at(line, key, format!("{text:?} is not a field path: {why}"));
    if text.is_empty() {
        return Err(fail("it is empty"));
    }
    if text.len() > MAX_PATH_BYTES {
        return Err(fail(&format!("longer than {MAX_PATH_BYTES} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(fail("it holds a control character"));
    }
    let segments: Vec<String> = text.split('.').map(str::to_string).collect();
    if segments.iter().any(String::is_empty) {
        return Err(fail(
            "a segment is empty (write keys separated by single dots, e.g. location.site)",
        ));
    }
    if segments.len() > MAX_PATH_SEGMENTS {
        return Err(fail(&format!("more than {MAX_PATH_SEGMENTS} segments")));
    }
    Ok(FieldPath {
        text: text.to_string(),
        segments,
    })
}

/// Returns true if and only if `name` is a Prometheus label name that users may set: `[a-zA-Z_][a-zA-Z0-9_]*`, not
/// starting with `__` (reserved for Prometheus itself).
pub fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    /// Loads a one-source config whose `generic:` block is `block` (indented by six spaces).
    fn load(block: &str) -> Result<Config, String> {
        let text = format!(
            "sources:\n  - name: acct\n    provider: generic\n    base_url: https://api.example.com\n    \
             token_env: T\n    generic:\n{block}"
        );
        Config::parse(&text, Path::new("g.yaml"), &|_| Some("tok".into()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn secret_looking_paths_are_refused_where_shown_and_accepted_for_timestamps_and_cursors() {
        let ok = load(
            "      items: data\n      pagination: { type: cursor, param: page_token, next: meta.nextPageToken }\n      \
             fields:\n        id: id\n        name: name\n        heartbeat: tokenHeartbeat\n        \
             token_rotated_at: __accessTokenLastModifiedAt\n        created_at: secretCreatedAt\n",
        )
        .unwrap();
        let generic = ok.sources[0].generic.as_ref().unwrap();
        assert_eq!(
            generic.fields.token_rotated_at.as_ref().unwrap().text,
            "__accessTokenLastModifiedAt"
        );
        for (field, path) in [
            ("id", "accessToken"),
            ("name", "creds.Password"),
            ("version", "meta.SECRET"),
            ("offline", "apiKeyState"),
            ("labels.owner", "owner.credential"),
        ] {
            let fields = match field {
                "labels.owner" => format!("id: id, name: name, labels: {{ owner: {path} }}"),
                "id" => format!("id: {path}, name: name"),
                "name" => format!("id: id, name: {path}"),
                other => format!("id: id, name: name, {other}: {path}"),
            };
            let e = load(&format!("      fields: {{ {fields} }}\n")).unwrap_err();
            assert!(
                e.contains(&format!(
                    "sources[0].generic.fields.{field}: \"{path}\" looks like it holds a secret"
                )),
                "{field}: {e}"
            );
        }
    }

    #[test]
    fn invalid_blocks_name_the_key_and_say_why() {
        for (block, expected) in [
            (
                "      query: { api_key: x }\n      fields: { id: id, name: name }\n",
                "sources[0].generic.query.api_key: a credential does not belong in the query string",
            ),
            (
                "      pagination: { type: cursor, param: c, next: meta.c }\n      fields: { id: id, name: name }\n",
                "sources[0].generic.pagination: type cursor needs items",
            ),
            (
                "      items: data\n      pagination: { type: cursor, param: c, next: data.c }\n      \
                 fields: { id: id, name: name }\n",
                "sources[0].generic.pagination.next: the cursor's path data.c overlaps items (data)",
            ),
            (
                "      pagination: { type: link, param: c }\n      fields: { id: id, name: name }\n",
                "sources[0].generic.pagination.param: applies only to pagination type cursor, not link",
            ),
            (
                "      offline_after: 5m\n      fields: { id: id, name: name }\n",
                "sources[0].generic.offline_after: needs fields.heartbeat",
            ),
            (
                "      provider_label: \"bad label\"\n      fields: { id: id, name: name }\n",
                "sources[0].generic.provider_label: \"bad label\" is not a provider label",
            ),
            (
                "      auth: { header: \"X Token\" }\n      fields: { id: id, name: name }\n",
                "sources[0].generic.auth.header: \"X Token\" is not an HTTP header name",
            ),
            (
                "      path: /v1/agents?all=1\n      fields: { id: id, name: name }\n",
                "sources[0].generic.path: must be a plain path",
            ),
            (
                "      fields: { id: id, name: name, labels: { 1site: site } }\n",
                "sources[0].generic.fields.labels.1site: \"1site\" is not a Prometheus label name",
            ),
            (
                "      fields: { id: id, name: name, labels: { __meta: site } }\n",
                "sources[0].generic.fields.labels.__meta: \"__meta\" is not a Prometheus label name",
            ),
            (
                "      fields: { id: id, name: name, labels: { site: a, site: b } }\n",
                "duplicate mapping key: site",
            ),
            (
                "      fields: { id: id, name: name, offline: { field: status, values: [] } }\n",
                "sources[0].generic.fields.offline.values: list 1 to 32 values",
            ),
            (
                &format!(
                    "      fields: {{ id: {}, name: name }}\n",
                    vec!["a"; 17].join(".")
                ),
                "more than 16 segments",
            ),
        ] {
            let e = load(block).unwrap_err();
            assert!(
                e.contains(expected),
                "{block}\n  expected: {expected}\n  got: {e}"
            );
        }
        let many: Vec<String> = (0..17).map(|i| format!("l{i}: p{i}")).collect();
        let e = load(&format!(
            "      fields: {{ id: id, name: name, labels: {{ {} }} }}\n",
            many.join(", ")
        ))
        .unwrap_err();
        assert!(e.contains("at most 16 labels"), "{e}");
    }

    #[test]
    fn defaults_are_link_pagination_bearer_auth_and_the_generic_label() {
        let config = load("      fields: { id: id, name: name }\n").unwrap();
        let g = config.sources[0].generic.as_ref().unwrap();
        assert_eq!(g.pagination, super::Pagination::Link);
        assert_eq!(
            (g.auth_header.as_str(), g.auth_prefix.as_str()),
            ("Authorization", "Bearer ")
        );
        assert_eq!(config.sources[0].provider.as_str(), "generic");
        assert_eq!(g.key, "sources[0].generic");
    }
}
