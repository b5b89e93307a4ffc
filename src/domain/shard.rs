//! Sharding: `run --shard INDEX/TOTAL` makes a replica poll, serve and alert on only the sources whose name hashes to
//! `INDEX` modulo `TOTAL`, so several replicas split a large set of accounts and Prometheus sees each exactly once.
//!
//! The hash is FNV-1a 64 of the source name's UTF-8 bytes (offset basis `0xcbf29ce484222325`, prime
//! `0x100000001b3`). It is part of the contract: it never changes between versions or platforms, so a rolling
//! upgrade never moves an account from one shard to another. Test vectors (also in CONFIGURATION.md):
//!
//! | name             | FNV-1a 64            | shard of 3 |
//! |------------------|----------------------|------------|
//! | `""`             | `0xcbf29ce484222325` | 2          |
//! | `a`              | `0xaf63dc4c8601ec8c` | 1          |
//! | `foobar`         | `0x85944171f73967e8` | 0          |
//! | `celigo-prod-eu` | `0xc9496ee7b4dff1e7` | 2          |

use std::fmt;
use std::str::FromStr;

/// The most shards accepted: far beyond any real deployment, small enough that a typo (`0/30000`) is caught.
pub const MAX_SHARDS: u32 = 1024;

/// The environment variable `run` and `check-config` read the shard from when `--shard` is not given; a Kubernetes
/// StatefulSet sets it from the pod's ordinal.
pub const SHARD_ENV: &str = "ONPREM_AGENT_EXPORTER_SHARD";

/// One shard of `total`: index `index` (`0 ≤ index < total`). [`Shard::ALL`] (0/1) owns every source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This replica's index, from 0.
    pub index: u32,
    /// How many shards there are.
    pub total: u32,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::ALL
    }
}

/// Why a `--shard` value was refused; the message names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid shard {value:?}: {reason} (write INDEX/TOTAL, e.g. 0/3, with 0 <= INDEX < TOTAL <= {MAX_SHARDS})"
)]
pub struct ShardError {
    /// The value as given.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for Shard {
    type Err = ShardError;

    /// Parses `INDEX/TOTAL`. A bare `INDEX-N` StatefulSet pod name is not accepted: the total must be explicit.
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let err = |reason| ShardError {
            value: s.to_string(),
            reason,
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(|| err("no '/'"))?;
        let index: u32 = i.trim().parse().map_err(|_| err("INDEX is not a number"))?;
        let total: u32 = n.trim().parse().map_err(|_| err("TOTAL is not a number"))?;
        if total == 0 || total > MAX_SHARDS {
            return Err(err("TOTAL is out of range"));
        }
        if index >= total {
            return Err(err("INDEX must be below TOTAL"));
        }
        Ok(Shard { index, total })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// FNV-1a 64 of `bytes`.
///
/// Hand-written rather than taken from a hashing crate because the value is a stable on-disk-like contract: five
/// lines pinned by the test vectors above cannot change under a dependency upgrade (Rust's `Hash` for `str`, which
/// such crates are usually driven through, appends a `0xff` byte and is not promised to stay the same).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Shard {
    /// The single shard that owns everything.
    pub const ALL: Shard = Shard { index: 0, total: 1 };

    /// The shard that owns the source called `name`, of `total`.
    pub fn index_of(name: &str, total: u32) -> u32 {
        (fnv1a64(name.as_bytes()) % u64::from(total.max(1))) as u32
    }

    /// Returns true if and only if this shard polls, serves and alerts on the source called `name`.
    pub fn owns(&self, name: &str) -> bool {
        Shard::index_of(name, self.total) == self.index
    }

    /// The labels of `onprem_agent_exporter_shard_info`.
    pub fn info_labels(&self) -> Vec<(&'static str, String)> {
        vec![
            ("index", self.index.to_string()),
            ("total", self.total.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_matches_the_documented_test_vectors() {
        let vectors: [(&str, u64, u32); 4] = [
            ("", 0xcbf2_9ce4_8422_2325, 2),
            ("a", 0xaf63_dc4c_8601_ec8c, 1),
            ("foobar", 0x8594_4171_f739_67e8, 0),
            ("celigo-prod-eu", 0xc949_6ee7_b4df_f1e7, 2),
        ];
        for (name, hash, shard_of_3) in vectors {
            assert_eq!(fnv1a64(name.as_bytes()), hash, "{name:?}");
            assert_eq!(Shard::index_of(name, 3), shard_of_3, "{name:?}");
        }
    }

    #[test]
    fn every_name_belongs_to_exactly_one_shard() {
        for total in 1..=7 {
            for i in 0..50 {
                let name = format!("account-{i}");
                let owners = (0..total)
                    .filter(|&index| Shard { index, total }.owns(&name))
                    .count();
                assert_eq!(owners, 1, "{name} of {total}");
            }
        }
    }

    #[test]
    fn shards_are_parsed_and_bad_ones_name_the_value() {
        assert_eq!("1/3".parse(), Ok(Shard { index: 1, total: 3 }));
        assert_eq!(" 0 / 1 ".parse(), Ok(Shard::ALL));
        let cases = [
            ("3/3", "INDEX must be below TOTAL"),
            ("1", "no '/'"),
            ("a/3", "INDEX is not a number"),
            ("0/0", "TOTAL is out of range"),
            ("0/5000", "TOTAL is out of range"),
        ];
        for (value, reason) in cases {
            let e = value.parse::<Shard>().unwrap_err();
            assert_eq!(e.reason, reason, "{value}");
            assert!(e.to_string().contains(&format!("{value:?}")), "{e}");
        }
    }
}
