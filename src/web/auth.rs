//! HTTP basic auth against the web config's bcrypt hashes, the way the exporter-toolkit checks them: every endpoint
//! but `/healthz` asks for it, unknown users cost as much as known ones, and verified credentials are cached so a
//! scrape every few seconds does not pay for bcrypt each time.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::sync::Semaphore;

use super::config::Users;

/// How many verified credentials the cache keeps before it starts over. Only successes are cached, so failed
/// guesses cannot grow it; the cap bounds it against many real users or rotating passwords.
const CACHE_MAX: usize = 1024;

/// How many bcrypt checks run at once. Each costs tens of milliseconds of CPU by design; a flood of wrong passwords
/// must not take every blocking thread, so the rest wait their turn.
const CONCURRENT_CHECKS: usize = 4;

/// The path that answers without credentials: it carries no data, and container health checks call it.
pub const OPEN_PATH: &str = "/healthz";

/// The users and what is needed to check them.
pub struct BasicAuth {
    /// User name → bcrypt hash.
    users: BTreeMap<String, String>,
    /// A hash of a random password at the configured users' cost: unknown users are checked against it so the
    /// answer takes as long as for a known user and timing does not tell which users exist.
    dummy: String,
    /// SHA-256 of (user, hash, password) for every credential bcrypt accepted. The password itself is never kept.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// Bounds concurrent bcrypt work, see [`CONCURRENT_CHECKS`].
    permits: Semaphore,
}

impl BasicAuth {
    /// Returns `None` when there are no users: then nothing asks for credentials.
    pub fn new(users: &Users) -> Option<Arc<BasicAuth>> {
        if users.0.is_empty() {
            return None;
        }
        let cost = users
            .0
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let random: [u8; 24] = rand::random();
        let dummy = bcrypt::hash(random, cost).unwrap_or_default();
        Some(Arc::new(BasicAuth {
            users: users.0.clone(),
            dummy,
            verified: Mutex::new(HashSet::new()),
            permits: Semaphore::new(CONCURRENT_CHECKS),
        }))
    }

    /// Returns true if and only if `authorization` holds `Basic` credentials of a configured user with the right
    /// password.
    pub async fn check(self: &Arc<Self>, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let known = self.users.get(&user);
        let hash = known.unwrap_or(&self.dummy).clone();
        let key = cache_key(&user, &hash, &password);
        if known.is_some() && self.lock().contains(&key) {
            return true;
        }
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if !(ok && known.is_some()) {
            return false;
        }
        let mut cache = self.lock();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Splits `Basic base64(user:password)`; `None` for any other scheme or a malformed value.
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [user, hash, password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Middleware: lets a request through if and only if it is for [`OPEN_PATH`] or carries valid credentials;
/// otherwise answers 401 with `WWW-Authenticate: Basic`.
pub async fn require(State(auth): State<Arc<BasicAuth>>, request: Request, next: Next) -> Response {
    if request.uri().path() == OPEN_PATH
        || auth
            .check(request.headers().get(header::AUTHORIZATION))
            .await
    {
        return next.run(request).await;
    }
    let mut response = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"onprem-agent-exporter\", charset=\"UTF-8\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        let raw = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {raw}")).unwrap()
    }

    fn auth() -> Arc<BasicAuth> {
        let mut users = BTreeMap::new();
        users.insert("prometheus".to_string(), bcrypt::hash("s3cret", 4).unwrap());
        BasicAuth::new(&Users(users)).expect("one user")
    }

    #[tokio::test]
    async fn the_right_password_of_a_known_user_passes_and_is_cached() {
        let auth = auth();
        assert!(auth.check(Some(&basic("prometheus", "s3cret"))).await);
        assert_eq!(auth.lock().len(), 1, "a verified credential is cached");
        assert!(auth.check(Some(&basic("prometheus", "s3cret"))).await);
    }

    #[tokio::test]
    async fn wrong_passwords_unknown_users_and_other_schemes_fail_and_are_not_cached() {
        let auth = auth();
        assert!(!auth.check(Some(&basic("prometheus", "wrong"))).await);
        assert!(!auth.check(Some(&basic("nobody", "s3cret"))).await);
        assert!(
            !auth
                .check(Some(&HeaderValue::from_static("Bearer abc")))
                .await
        );
        assert!(
            !auth
                .check(Some(&HeaderValue::from_static("Basic !!!")))
                .await
        );
        assert!(!auth.check(None).await);
        assert!(auth.lock().is_empty(), "failures are never cached");
    }

    #[test]
    fn the_dummy_hash_has_the_cost_of_the_configured_users() {
        let auth = auth();
        let parts: bcrypt::HashParts = auth.dummy.parse().expect("the dummy is a bcrypt hash");
        assert_eq!(parts.get_cost(), 4);
    }

    #[test]
    fn no_users_means_no_auth() {
        assert!(BasicAuth::new(&Users::default()).is_none());
    }
}
