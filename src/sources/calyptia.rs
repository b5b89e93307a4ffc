//! The Calyptia Cloud source: lists the Fluent Bit and Fluentd agents of one project with
//! `GET /v1/projects/{projectID}/agents`, following `Link: rel="next"` pages (`before=` cursors).
//!
//! Auth is the project token in `X-Project-Token`. The project id is the configured `project_id` or, by default, the
//! one inside the token: a project token is `base64url(JSON {"ProjectID": ...})` + `.` + a signature.
//!
//! Each agent record carries its own `token`, a secret. Records are read field by field (see [`super::record`]) and
//! `token` is not among the fields read, so serde_json skips it as `IgnoredAny` and it is never stored. Calyptia documents no
//! token-rotation date, so these agents have no token series and the token rules stay silent for them.

use std::borrow::Cow;
use std::time::Duration;

use reqwest::header::HeaderName;
use secrecy::ExposeSecret;
use url::Url;

use crate::config::sources::SourceConfig;
use crate::domain::{Agent, Provider};
use crate::sources::http::Auth;
use crate::sources::record::{Fields, Scalar, read_agents, timestamp};
use crate::sources::{Account, BoxFuture, PollOutcome, Source, UpstreamError};

/// The header Calyptia reads the project token from.
pub const PROJECT_TOKEN_HEADER: &str = "x-project-token";

/// One Calyptia Cloud project.
#[derive(Debug)]
pub struct CalyptiaSource {
    /// Name, first page (`{base_url}/v1/projects/{projectID}/agents[?last=N]`), page cap and HTTP client.
    account: Account,
}

/// Why a Calyptia source could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CalyptiaBuildError {
    /// No `project_id` is configured and the token does not carry one. The message never repeats the token.
    #[error("{0}")]
    ProjectId(ProjectIdError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] reqwest::Error),
}

impl CalyptiaSource {
    /// Builds the source. The project id is `project_id` when configured, otherwise read from the token; a token
    /// that does not decode fails here, at start-up, rather than at every poll.
    pub fn new(config: SourceConfig) -> Result<CalyptiaSource, CalyptiaBuildError> {
        let project = match config.project_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => project_id_from_token(config.token.expose_secret())
                .map_err(CalyptiaBuildError::ProjectId)?,
        };
        let header = HeaderName::from_static(PROJECT_TOKEN_HEADER);
        let auth = Auth::Header(header, config.token.clone());
        let first = first_page(&config.base_url, &project, config.page_size);
        Ok(CalyptiaSource {
            account: Account::new(&config, auth, first)?,
        })
    }

    /// Replaces the first backoff delay of the retry policy (250 ms by default). Tests set it to a millisecond.
    pub fn with_backoff_base(mut self, base: Duration) -> CalyptiaSource {
        self.account.set_backoff_base(base);
        self
    }
}

impl Source for CalyptiaSource {
    fn name(&self) -> &str {
        &self.account.name
    }

    fn provider(&self) -> Provider {
        Provider::Calyptia
    }

    fn poll(&self) -> BoxFuture<'_, Result<PollOutcome, UpstreamError>> {
        let name = self.account.name.clone();
        let decode = move |body: &[u8], url: &Url, agents: &mut Vec<Agent>| {
            read_agents(body, url, &name, AgentFields::into_agent, agents)
        };
        Box::pin(self.account.list_linked_pages(decode))
    }

    fn not_before(&self) -> Option<jiff::Timestamp> {
        self.account.http.not_before()
    }
}

/// `{base}/v1/projects/{project}/agents`, plus `last=N` only when a page size is configured. The project id is
/// pushed as one percent-encoded path segment.
///
/// Assumed: `last` is the page size (it is the only size-like parameter documented); without one the server
/// chooses and we follow its links.
fn first_page(base: &Url, project: &str, page_size: Option<u32>) -> Url {
    let mut url = base.clone();
    url.set_fragment(None);
    url.set_query(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(["v1", "projects"])
            .push(project)
            .push("agents");
    }
    if let Some(size) = page_size {
        url.query_pairs_mut().append_pair("last", &size.to_string());
    }
    url
}

/// Why the project id could not be read from a token. `Display` describes the token's shape, never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the token is not a Calyptia project token ({0}); set project_id, or use the project token from Calyptia Cloud"
)]
pub struct ProjectIdError(&'static str);

/// Reads the project id out of a Calyptia project token: the part before the first `.` is base64url (padded or not;
/// the standard alphabet is accepted too) of a JSON object whose `ProjectID` is a non-empty string. A token without
/// a `.` is tried whole. Other keys of the object are ignored.
pub fn project_id_from_token(token: &str) -> Result<String, ProjectIdError> {
    let head = token.trim().split('.').next().unwrap_or_default();
    if head.is_empty() {
        return Err(ProjectIdError("it is empty before the first dot"));
    }
    let json = base64_decode(head).ok_or(ProjectIdError("its first part is not base64url"))?;
    #[derive(serde::Deserialize)]
    struct Claims<'a> {
        #[serde(rename = "ProjectID", borrow)]
        project_id: Option<Scalar<'a>>,
    }
    let claims: Claims = serde_json::from_slice(&json)
        .map_err(|_| ProjectIdError("its first part is not a JSON object"))?;
    match claims.project_id {
        Some(Scalar::Str(id)) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => Err(ProjectIdError("it carries no ProjectID")),
    }
}

/// Decodes base64 in either alphabet (`-_` or `+/`), with or without `=` padding. Returns `None` for any other
/// character, misplaced padding or an impossible length.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// The fields of an agent record we read. Holds no secret: `token` is not among the keys. What is only compared or
/// parsed (`status`, the timestamps) stays borrowed from the page.
#[derive(Default)]
struct AgentFields<'de> {
    id: Option<String>,
    name: Option<String>,
    version: Option<String>,
    status: Option<Cow<'de, str>>,
    kind: Option<String>,
    edition: Option<String>,
    os: Option<String>,
    arch: Option<String>,
    last_metrics_added_at: Option<Cow<'de, str>>,
    created_at: Option<Cow<'de, str>>,
}

impl<'de> Fields<'de> for AgentFields<'de> {
    const KEYS: &'static [&'static str] = &[
        "id",
        "name",
        "version",
        "status",
        "type",
        "edition",
        "os",
        "arch",
        "lastMetricsAddedAt",
        "createdAt",
    ];

    fn set(&mut self, index: usize, value: Scalar<'de>) {
        match index {
            0 => self.id = value.string(),
            1 => self.name = value.string(),
            2 => self.version = value.string(),
            3 => self.status = value.text(),
            4 => self.kind = value.string(),
            5 => self.edition = value.string(),
            6 => self.os = value.string(),
            7 => self.arch = value.string(),
            8 => self.last_metrics_added_at = value.text(),
            _ => self.created_at = value.text(),
        }
    }
}

impl AgentFields<'_> {
    /// The agent, or `None` when the record has no non-empty string `id`.
    ///
    /// `status: unhealthy` is the platform's verdict that the agent is offline. Assumed: any other status, or none,
    /// is not offline; an agent that stops sending metrics still shows in the heartbeat age, which
    /// `lastMetricsAddedAt` feeds (Calyptia's own CLI calls an agent inactive after five minutes without metrics).
    /// `type`, `edition`, `os` and `arch` go on the info metric, in that order.
    fn into_agent(self) -> Option<Agent> {
        let id = self.id?;
        let mut agent = Agent::new(id, self.name.unwrap_or_default());
        agent.version = self.version;
        agent.offline = self
            .status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("unhealthy"));
        agent.last_heartbeat = timestamp(
            &agent.id,
            "lastMetricsAddedAt",
            self.last_metrics_added_at.as_deref(),
        );
        agent.created_at = timestamp(&agent.id, "createdAt", self.created_at.as_deref());
        agent.info = vec![
            ("type", self.kind.unwrap_or_default()),
            ("edition", self.edition.unwrap_or_default()),
            ("os", self.os.unwrap_or_default()),
            ("arch", self.arch.unwrap_or_default()),
        ];
        Some(agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_id_is_read_from_padded_and_unpadded_tokens() {
        // {"ProjectID":"p-1"} is 19 bytes: its base64 needs one `=` of padding.
        let padded = "eyJQcm9qZWN0SUQiOiJwLTEifQ==.c2lnbmF0dXJl";
        let unpadded = "eyJQcm9qZWN0SUQiOiJwLTEifQ.c2lnbmF0dXJl";
        for token in [padded, unpadded, "eyJQcm9qZWN0SUQiOiJwLTEifQ"] {
            assert_eq!(
                project_id_from_token(token).as_deref(),
                Ok("p-1"),
                "{token}"
            );
        }
    }

    #[test]
    fn a_token_that_does_not_decode_gives_an_error_that_does_not_repeat_it() {
        for token in [
            "hunter2-not-a-token",
            "",
            ".sig",
            "aHVudGVyMg.sig", // "hunter2": base64 but not JSON
            "eyJYIjoxfQ.sig", // {"X":1}: JSON without ProjectID
            "e30=.x",         // {}
            "!!!!.sig",
        ] {
            let e = project_id_from_token(token).unwrap_err();
            let shown = e.to_string();
            assert!(
                !shown.contains("hunter2") && (token.is_empty() || !shown.contains(token)),
                "{token:?} gave {shown:?}"
            );
        }
    }

    #[test]
    fn base64_decodes_both_alphabets_and_rejects_junk() {
        assert_eq!(
            base64_decode("-_8").unwrap(),
            base64_decode("+/8=").unwrap()
        );
        assert_eq!(base64_decode("aGk").unwrap(), b"hi");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a*bc").is_none());
    }

    #[test]
    fn first_page_encodes_the_project_and_adds_last_only_when_configured() {
        let base = Url::parse("https://cloud-api.calyptia.com").unwrap();
        assert_eq!(
            first_page(&base, "p/1", None).as_str(),
            "https://cloud-api.calyptia.com/v1/projects/p%2F1/agents"
        );
        assert_eq!(
            first_page(&base, "p1", Some(20)).as_str(),
            "https://cloud-api.calyptia.com/v1/projects/p1/agents?last=20"
        );
    }

    #[test]
    fn unhealthy_means_offline_and_the_token_is_never_read() {
        let mut agents: Vec<Agent> = Vec::new();
        let url = Url::parse("https://cloud-api.calyptia.com/v1/projects/p/agents").unwrap();
        read_agents(
            br#"[{"id":"a","name":"fb-1","token":"secret-agent-token","status":"unhealthy","type":"fluentbit",
                 "edition":"community","os":"linux","arch":"x86_64","lastMetricsAddedAt":null},
                {"id":"b","status":"healthy","lastMetricsAddedAt":"2025-01-22T20:59:27.690Z"}]"#,
            &url,
            "test",
            AgentFields::into_agent,
            &mut agents,
        )
        .unwrap();
        assert!(agents[0].offline && !agents[1].offline);
        assert_eq!(agents[0].last_heartbeat, None);
        assert!(agents[1].last_heartbeat.is_some());
        assert_eq!(
            agents[0].info,
            vec![
                ("type", "fluentbit".to_string()),
                ("edition", "community".to_string()),
                ("os", "linux".to_string()),
                ("arch", "x86_64".to_string())
            ]
        );
        assert!(!format!("{agents:?}").contains("secret-agent-token"));
    }
}
