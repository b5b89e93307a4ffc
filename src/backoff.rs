//! The one backoff policy of the exporter, shared by the sources' retries ([`crate::sources::http`]) and the
//! outbox's redeliveries ([`crate::notify::outbox`]): the first wait, doubled after each further failure, capped.
//!
//! The sequence comes from `backon`'s exponential backoff; what is particular to a caller stays with it (the
//! sources add jitter and honour `Retry-After`, the outbox keeps a message's failure count across wake-ups).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Exponential backoff: `first`, `2 × first`, `4 × first`, … never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait, however many failures came before.
    pub max: Duration,
}

impl Backoff {
    /// The policy as a `backon` builder: factor 2, no jitter, no limit on the number of waits (callers count their
    /// own attempts: the sources have `max_attempts`, the outbox an age limit).
    pub fn builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .without_max_times()
    }

    /// The wait after `failures` failures in a row (1 for the first): `first × 2^(failures-1)`, capped at `max`.
    /// Zero failures wait as one.
    pub fn after(&self, failures: u32) -> Duration {
        // Sixty-four doublings exceed any cap a Duration can hold; walking further would only spend time.
        let skip = failures.saturating_sub(1).min(64) as usize;
        self.builder()
            .build()
            .nth(skip)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_the_first_and_stop_at_the_cap() {
        let policy = Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(8),
        };
        let waits: Vec<u64> = (1..=6).map(|n| policy.after(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
        assert_eq!(policy.after(0), Duration::from_secs(1));
        assert_eq!(policy.after(u32::MAX), Duration::from_secs(8));
    }

    #[test]
    fn a_first_wait_above_the_cap_is_cut_to_the_cap() {
        let policy = Backoff {
            first: Duration::from_secs(30),
            max: Duration::from_secs(10),
        };
        assert_eq!(policy.after(1), Duration::from_secs(10));
    }
}
