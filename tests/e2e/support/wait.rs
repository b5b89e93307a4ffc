//! Bounded waits on an observable event, so that no test sleeps for a fixed time hoping something has happened.

use std::time::{Duration, Instant};

/// The longest any single wait may take: generous, so that a loaded 2-core machine does not fail a test.
pub const WAIT: Duration = Duration::from_secs(60);

/// Polls `check` every 100 ms until it returns `Some`, for at most [`WAIT`]; then fails naming `what` and showing
/// `seen()`.
pub async fn wait_until<T>(
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
    seen: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT:?} for {what}; saw:\n{}",
            seen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
