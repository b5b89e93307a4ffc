//! HTTP basic auth against the web config's bcrypt hashes, the way the exporter-toolkit checks them: every endpoint
//! but `/healthz` asks for it, and verified credentials are cached so a scrape every few seconds does not pay for
//! bcrypt each time.
//!
//! bcrypt is slow on purpose, so its work is bounded: unknown users are checked against a cost-10 stand-in (made
//! off the listener, never at the users' highest cost); at most [`CONCURRENT_CHECKS`] checks run at once; at most
//! [`QUEUE_MAX`] wait or run, and at most [`PER_ADDRESS_MAX`] of them for one client address. A request that finds
//! no room is answered `429` at once, so a flood of wrong passwords from one address cannot make another address's
//! login wait behind it, and a cached scrape never waits at all.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::sync::{OnceCell, Semaphore};

use super::config::Users;

/// How many verified credentials the cache keeps before it starts over. Only successes are cached, so failed
/// guesses cannot grow it; the cap bounds it against many real users or rotating passwords.
const CACHE_MAX: usize = 1024;

/// How many bcrypt checks run at once. Each costs tens of milliseconds of CPU (at cost 10) by design; a flood of
/// wrong passwords must not take every blocking thread.
pub const CONCURRENT_CHECKS: usize = 4;

/// How many bcrypt checks may run or wait at once, all addresses together. Past it, `429`.
pub const QUEUE_MAX: usize = 64;

/// How many bcrypt checks one client address may have running or waiting. Past it, `429` for that address only.
pub const PER_ADDRESS_MAX: usize = 8;

/// The cost of the stand-in hash unknown users are checked against: the toolkit's default cost, whatever the
/// configured users' costs, so an unknown user never costs more than an ordinary check.
pub const DUMMY_COST: u32 = 10;

/// The path that answers without credentials: it carries no data, and container health checks call it.
pub const OPEN_PATH: &str = "/healthz";

/// What a check of credentials found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A configured user with the right password.
    Allowed,
    /// No credentials, an unknown user or a wrong password.
    Denied,
    /// The bcrypt queue (or this address's share of it) is full: try again later.
    Busy,
}

/// The users and what is needed to check them.
pub struct BasicAuth {
    /// User name → bcrypt hash.
    users: BTreeMap<String, String>,
    /// A cost-10 stand-in hash (see [`make_dummy`]): unknown users are checked against it so that their answer
    /// costs an ordinary check, and timing does not tell at once which users exist. Made on a blocking thread just
    /// after start, never on the listener.
    dummy: Arc<OnceCell<String>>,
    /// SHA-256 of (user, hash, password) for every credential bcrypt accepted. The password itself is never kept.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// Bounds concurrent bcrypt work, see [`CONCURRENT_CHECKS`]. First come, first served.
    permits: Semaphore,
    /// Checks admitted (running or waiting) per client address, for [`QUEUE_MAX`] and [`PER_ADDRESS_MAX`]. A std
    /// mutex: held only to count.
    admitted: Mutex<HashMap<IpAddr, usize>>,
}

impl BasicAuth {
    /// Returns `None` when there are no users: then nothing asks for credentials. Inside a Tokio runtime the
    /// stand-in hash starts being made at once on a blocking thread.
    pub fn new(users: &Users) -> Option<Arc<BasicAuth>> {
        if users.0.is_empty() {
            return None;
        }
        let auth = Arc::new(BasicAuth {
            users: users.0.clone(),
            dummy: Arc::new(OnceCell::new()),
            verified: Mutex::new(HashSet::new()),
            permits: Semaphore::new(CONCURRENT_CHECKS),
            admitted: Mutex::new(HashMap::new()),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            let dummy = auth.dummy.clone();
            tokio::spawn(async move {
                dummy.get_or_init(make_dummy).await;
            });
        }
        Some(auth)
    }

    /// Checks `authorization` (the `Authorization` header) sent from `peer`: [`Verdict::Allowed`] if and only if
    /// it holds `Basic` credentials of a configured user with the right password.
    pub async fn check(
        self: &Arc<Self>,
        authorization: Option<&HeaderValue>,
        peer: IpAddr,
    ) -> Verdict {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Verdict::Denied;
        };
        let known = self.users.get(&user).cloned();
        if let Some(hash) = &known
            && self.lock().contains(&cache_key(&user, hash, &password))
        {
            return Verdict::Allowed;
        }
        let Some(_admission) = self.admit(peer) else {
            return Verdict::Busy;
        };
        let hash = match &known {
            Some(h) => h.clone(),
            None => self.dummy.get_or_init(make_dummy).await.clone(),
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return Verdict::Denied;
        };
        let checked = password.clone();
        let checked_hash = hash.clone();
        let ok = tokio::task::spawn_blocking(move || {
            bcrypt::verify(checked, &checked_hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !(ok && known.is_some()) {
            return Verdict::Denied;
        }
        let mut cache = self.lock();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(cache_key(&user, &hash, &password));
        Verdict::Allowed
    }

    /// A place in the bcrypt queue for `peer`, or `None` when the queue or the address's share is full.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admission> {
        let mut admitted = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = admitted.values().sum();
        let mine = admitted.entry(peer).or_insert(0);
        if total >= QUEUE_MAX || *mine >= PER_ADDRESS_MAX {
            if *mine == 0 {
                admitted.remove(&peer);
            }
            return None;
        }
        *mine += 1;
        Some(Admission {
            auth: self.clone(),
            peer,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A place in the bcrypt queue, given back on drop.
struct Admission {
    auth: Arc<BasicAuth>,
    peer: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut admitted = self.auth.admitted.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = admitted.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                admitted.remove(&self.peer);
            }
        }
    }
}

/// Makes the stand-in hash: a well-formed cost-10 bcrypt hash with a random salt and a random digest. No password
/// hashes to it (or only by a 2^-184 chance, and unknown users are refused whatever the check says), so nothing
/// needs computing: checking against it costs exactly one cost-10 bcrypt run, which is all it is for. Runs on a
/// blocking thread anyway, so that its first use never sits on the listener.
async fn make_dummy() -> String {
    tokio::task::spawn_blocking(|| {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::BCRYPT,
            base64::engine::general_purpose::NO_PAD,
        );
        let salt: [u8; 16] = rand::random();
        let digest: [u8; 23] = rand::random();
        format!(
            "$2b${DUMMY_COST:02}${}{}",
            engine.encode(salt),
            engine.encode(digest)
        )
    })
    .await
    .unwrap_or_default()
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

/// The client address of `request`, as the listener recorded it; unspecified when served some other way.
pub fn peer(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// `429 Too Many Requests` with `Retry-After: 1`.
pub fn too_many_requests() -> Response {
    let mut response = (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Middleware: lets a request through if and only if it is for [`OPEN_PATH`] or carries valid credentials;
/// answers 429 when the bcrypt queue has no room for it, 401 with `WWW-Authenticate: Basic` otherwise.
pub async fn require(State(auth): State<Arc<BasicAuth>>, request: Request, next: Next) -> Response {
    if request.uri().path() == OPEN_PATH {
        return next.run(request).await;
    }
    let verdict = auth
        .check(request.headers().get(header::AUTHORIZATION), peer(&request))
        .await;
    match verdict {
        Verdict::Allowed => return next.run(request).await,
        Verdict::Busy => return too_many_requests(),
        Verdict::Denied => {}
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

    const HERE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

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
        let ok = Some(basic("prometheus", "s3cret"));
        assert_eq!(auth.check(ok.as_ref(), HERE).await, Verdict::Allowed);
        assert_eq!(auth.lock().len(), 1, "a verified credential is cached");
        assert_eq!(auth.check(ok.as_ref(), HERE).await, Verdict::Allowed);
    }

    #[tokio::test]
    async fn wrong_passwords_unknown_users_and_other_schemes_fail_and_are_not_cached() {
        let auth = auth();
        for value in [
            basic("prometheus", "wrong"),
            basic("nobody", "s3cret"),
            HeaderValue::from_static("Bearer abc"),
            HeaderValue::from_static("Basic !!!"),
        ] {
            assert_eq!(
                auth.check(Some(&value), HERE).await,
                Verdict::Denied,
                "{value:?}"
            );
        }
        assert_eq!(auth.check(None, HERE).await, Verdict::Denied);
        assert!(auth.lock().is_empty(), "failures are never cached");
    }

    #[tokio::test]
    async fn the_stand_in_hash_has_cost_ten_whatever_the_users_cost() {
        let auth = auth();
        let dummy = auth.dummy.get_or_init(make_dummy).await;
        let parts: bcrypt::HashParts = dummy.parse().expect("the dummy is a bcrypt hash");
        assert_eq!(parts.get_cost(), DUMMY_COST);
        assert_eq!(dummy.len(), 60);
        assert!(
            !bcrypt::verify("", dummy).unwrap(),
            "no password matches it"
        );
    }

    #[tokio::test]
    async fn one_address_cannot_take_more_than_its_share_of_the_queue() {
        let auth = auth();
        let flood = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let held: Vec<_> = (0..PER_ADDRESS_MAX)
            .map(|_| auth.admit(flood).expect("room"))
            .collect();
        assert!(auth.admit(flood).is_none(), "the flooding address is full");
        assert!(auth.admit(HERE).is_some(), "another address still gets in");
        drop(held);
        assert!(auth.admit(flood).is_some(), "places come back");
        assert_eq!(
            auth.check(Some(&basic("prometheus", "s3cret")), HERE).await,
            Verdict::Allowed
        );
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let auth = auth();
        let held: Vec<_> = (0..QUEUE_MAX)
            .map(|i| {
                let ip = IpAddr::V4(Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8));
                auth.admit(ip).expect("room")
            })
            .collect();
        assert_eq!(
            auth.check(Some(&basic("prometheus", "wrong")), HERE).await,
            Verdict::Busy
        );
        drop(held);
    }

    #[test]
    fn no_users_means_no_auth() {
        assert!(BasicAuth::new(&Users::default()).is_none());
    }
}
