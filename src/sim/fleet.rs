//! A deterministic, time-driven fleet of fake on-premise agents that every provider simulator renders in its own
//! vendor's JSON.
//!
//! Nothing here knows about integrator.io: an agent is an id, a name, a few instants and a [`Behaviour`]. The
//! provider files ([`super::celigo`], [`super::planasonix`], [`super::calyptia`]) turn it into wire records.
//!
//! Two properties matter more than realism:
//!
//! - **Determinism.** Agent `i` is generated from `(seed, i)` alone, by a hand-written SplitMix64, so the same seed
//!   and anchor give the same fleet on every build and every platform (the `rand` crate does not promise a stable
//!   stream across versions). It also means a fleet can grow without changing the agents it already has.
//! - **No background task.** Liveness is a pure function of the wall clock: [`FleetAgent::liveness`] computes
//!   whether an agent is offline and when it last beat from `now`, so an idle simulator of 100k agents costs
//!   nothing and a request costs only the agents on its page.
//!
//! Instants are kept as Unix milliseconds (`i64`) because the renderers format them by hand, with or without the
//! millisecond part, and that is cheaper than going through a calendar type for every record.

use jiff::Timestamp;

/// Nominal heartbeat period of an online agent, milliseconds. Each agent gets its own period within ±1 s of it.
pub const HEARTBEAT_INTERVAL_MS: i64 = 30_000;

const SECOND_MS: i64 = 1_000;
const HOUR_MS: i64 = 3_600 * SECOND_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Names that break naive renderers: quotes, backslashes, a newline, a tab, non-ASCII, HTML and label syntax.
/// Each is used once, for agents 1, 5, 9, ... so that even a fleet of 25 carries the first six.
pub const AWKWARD_NAMES: &[&str] = &[
    "db-gw \"east\"",
    "C:\\agents\\win01",
    "line1\nline2",
    "Zürich-東京",
    "<script>alert(1)</script>",
    "R&D <b>lab</b> agent",
    "tab\there",
    "trailing backslash \\",
    "emoji 🚀 relay",
    "label=\"x\",y=\"z\"}",
    "  padded  ",
    "it's o'clock",
];

const SITES: &[&str] = &["fra", "nyc", "sin", "syd", "lon", "sfo", "tyo", "gru"];
const ROLES: &[&str] = &[
    "erp-gw",
    "db-gw",
    "sftp",
    "sap-relay",
    "oracle-ebs",
    "netsuite-sync",
    "mssql",
    "file-drop",
];
const DESCRIPTIONS: &[&str] = &[
    "Reaches the ERP database behind the firewall",
    "File drop for the nightly EDI batch",
    "",
    "Owned by the integration team; page on-call before restarting",
];

/// Agent software versions, with their weights out of 10.
const VERSIONS: &[(&str, u64)] = &[("5.5.0", 4), ("5.4.2", 3), ("5.4.1", 2), ("5.3.9", 1)];

/// How an agent's connection behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Online for good, heartbeating every period.
    Steady,
    /// Repeats a cycle of `cycle_ms`: online, then offline for the last `offline_ms` of the cycle, shifted by
    /// `phase_ms`. About five minutes with two offline, so that alerts fire and resolve within a demo.
    Flapping {
        cycle_ms: i64,
        offline_ms: i64,
        phase_ms: i64,
    },
    /// Registered but never connected: no heartbeat and no version, and the platform calls it offline.
    NeverConnected,
    /// Stopped heartbeating at `last_heartbeat_ms` (hours to weeks before the anchor) and never came back.
    Dead { last_heartbeat_ms: i64 },
}

/// Host operating system; decides the host name and the platform details a provider reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    Windows,
}

/// What the platform would say about an agent at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// The platform's own verdict.
    pub offline: bool,
    /// The last heartbeat received, Unix milliseconds; `None` if the agent never sent one. Never later than `now`.
    pub last_heartbeat_ms: Option<i64>,
}

/// One fake agent: the static facts, generated once. Secrets and secondary ids are derived on demand from
/// [`FleetAgent::key`] so that a 100k fleet stays small in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetAgent {
    /// Position in the fleet; the order providers list agents in.
    pub index: usize,
    /// Per-agent random key, `mix(seed, index)`; the root of every derived value.
    pub key: u64,
    /// A MongoDB-style ObjectId: a plausible second, a per-fleet random part, and a counter that encodes `index`.
    pub id: [u8; 12],
    /// Display name. Untrusted by design: see [`AWKWARD_NAMES`].
    pub name: Box<str>,
    /// Free text; `None` when the agent has none (field absent), `Some("")` when it is empty.
    pub description: Option<&'static str>,
    pub os: Os,
    /// `None` for an agent that never connected, so it never reported one.
    pub version: Option<&'static str>,
    /// Registration instant, Unix milliseconds.
    pub created_ms: i64,
    /// Last token rotation, Unix milliseconds; `None` when the platform never recorded one (the token is then as old
    /// as the agent).
    pub token_rotated_ms: Option<i64>,
    /// Last configuration change, Unix milliseconds; between creation and the anchor.
    pub modified_ms: i64,
    pub behaviour: Behaviour,
    /// This agent's heartbeat period, milliseconds (29–31 s).
    pub heartbeat_interval_ms: i64,
    /// Offset of the heartbeat grid, milliseconds in `[0, heartbeat_interval_ms)`, so agents do not beat together.
    pub heartbeat_phase_ms: i64,
    /// Whether the platform renders this agent's instants with milliseconds. Real records mix both forms.
    pub millis: bool,
    /// Local port of the agent's listener.
    pub port: u16,
    /// Whether automatic updates are on.
    pub update_enabled: bool,
    /// A version the platform plans to downgrade to, on a rare agent.
    pub downgrade_to: Option<&'static str>,
    /// Whether the agent belongs to an installed integration app (it then carries integration and connector ids).
    pub integration_app: bool,
}

/// Salts for the values derived from [`FleetAgent::key`]; distinct so the derived values are independent.
mod salt {
    pub const TOKEN: u64 = 0x746f_6b65_6e00_0001;
    pub const TOKEN_HASH: u64 = 0x6861_7368_0000_0002;
    pub const EXTENSION: u64 = 0x6578_7400_0000_0003;
    pub const INTEGRATION: u64 = 0x696e_7400_0000_0004;
    pub const CONNECTOR: u64 = 0x636f_6e6e_0000_0005;
    pub const IP: u64 = 0x6970_0000_0000_0006;
}

impl FleetAgent {
    /// Generates agent `index` of the fleet `seed`, with every age measured back from `anchor_ms`.
    ///
    /// The kind of agent follows from `index` alone, so that every fleet of 20 or more carries every kind:
    /// 12.5 % flap (`index % 8 == 5`), 10 % never connected (`index % 20` is 3 or 17), 5 % are dead
    /// (`index % 20 == 11`), the rest are steady. Token ages likewise: 20 % past 90 days, 10 % between 76 and 89
    /// days, the rest between 2 and 75; one agent in six has no rotation date.
    pub fn generate(
        seed: u64,
        fleet_part: [u8; 5],
        counter_start: u32,
        index: usize,
        anchor_ms: i64,
    ) -> FleetAgent {
        let key = mix(seed ^ (index as u64).wrapping_mul(0xa076_1d64_78bd_642f));
        let mut rng = SplitMix64(key);

        let behaviour_kind = if index % 8 == 5 {
            1
        } else if index % 20 == 3 || index % 20 == 17 {
            2
        } else if index % 20 == 11 {
            3
        } else {
            0
        };

        let token_age_ms = match index % 10 {
            0 | 6 => rng.range(91, 200) * DAY_MS,
            3 => rng.range(76, 89) * DAY_MS,
            _ => rng.range(2, 76) * DAY_MS,
        } + rng.range(0, DAY_MS);
        let rotated = index % 6 != 4;
        let mut created_age_ms = if rotated {
            token_age_ms + rng.range(0, 400) * DAY_MS
        } else {
            token_age_ms
        };

        let behaviour = match behaviour_kind {
            1 => {
                let cycle_ms = rng.range(270, 331) * SECOND_MS;
                Behaviour::Flapping {
                    cycle_ms,
                    offline_ms: rng.range(100, 141) * SECOND_MS,
                    phase_ms: rng.range(0, cycle_ms),
                }
            }
            2 => Behaviour::NeverConnected,
            3 => {
                let stale_ms = rng.range(2 * HOUR_MS, 30 * DAY_MS);
                created_age_ms = created_age_ms.max(stale_ms + DAY_MS);
                Behaviour::Dead {
                    last_heartbeat_ms: anchor_ms - stale_ms,
                }
            }
            _ => Behaviour::Steady,
        };

        let created_ms = anchor_ms - created_age_ms;
        let token_rotated_ms = rotated.then(|| anchor_ms - token_age_ms);
        let since = token_rotated_ms.unwrap_or(created_ms);
        let modified_ms = since + rng.range(0, (anchor_ms - since) / 2 + 1);

        let name: Box<str> = match AWKWARD_NAMES.get(index / 4) {
            Some(awkward) if index % 4 == 1 => (*awkward).into(),
            _ => format!(
                "{}-{}-{:03}",
                SITES[rng.below(SITES.len() as u64) as usize],
                ROLES[rng.below(ROLES.len() as u64) as usize],
                index
            )
            .into(),
        };
        let description = match rng.below(5) as usize {
            4 => None,
            n => Some(DESCRIPTIONS[n % DESCRIPTIONS.len()]),
        };
        let os = if rng.below(10) < 3 {
            Os::Windows
        } else {
            Os::Linux
        };
        let version = match behaviour {
            Behaviour::NeverConnected => None,
            _ => Some(weighted_version(rng.below(10))),
        };
        let heartbeat_interval_ms = HEARTBEAT_INTERVAL_MS + rng.range(-SECOND_MS, SECOND_MS + 1);
        let heartbeat_phase_ms = rng.range(0, heartbeat_interval_ms);

        let mut id = [0u8; 12];
        // The time part of a real ObjectId is the creation second; here it is drawn from the key instead, so that
        // ids do not move with the anchor and a seed names the same agents in every run.
        id[..4].copy_from_slice(&(1_500_000_000 + (key % 250_000_000) as u32).to_be_bytes());
        id[4..9].copy_from_slice(&fleet_part);
        id[9..].copy_from_slice(
            &(counter_start.wrapping_add(index as u32) & 0x00ff_ffff).to_be_bytes()[1..],
        );

        FleetAgent {
            index,
            key,
            id,
            name,
            description,
            os,
            version,
            created_ms,
            token_rotated_ms,
            modified_ms,
            behaviour,
            heartbeat_interval_ms,
            heartbeat_phase_ms,
            millis: rng.below(2) == 0,
            port: 4000 + rng.below(1000) as u16,
            update_enabled: rng.below(5) != 0,
            downgrade_to: (index % 37 == 36).then_some("5.4.1"),
            integration_app: index % 17 == 16,
        }
    }

    /// What the platform says about this agent at `now_ms` (Unix milliseconds).
    ///
    /// A steady agent's last heartbeat is the latest point of its own grid (`phase + k * interval`) not after
    /// `now_ms`. A flapping agent follows the same grid while online; while offline its heartbeat stays at the last
    /// beat before the offline window began. Without millisecond rendering the instant is truncated to the second,
    /// so it still never lies in the future.
    pub fn liveness(&self, now_ms: i64) -> Liveness {
        let beat = |t: i64| {
            let last = t - (t - self.heartbeat_phase_ms).rem_euclid(self.heartbeat_interval_ms);
            if self.millis {
                last
            } else {
                last - last.rem_euclid(SECOND_MS)
            }
        };
        match self.behaviour {
            Behaviour::Steady => Liveness {
                offline: false,
                last_heartbeat_ms: Some(beat(now_ms)),
            },
            Behaviour::Flapping {
                cycle_ms,
                offline_ms,
                phase_ms,
            } => {
                let pos = (now_ms - phase_ms).rem_euclid(cycle_ms);
                let online_ms = cycle_ms - offline_ms;
                if pos < online_ms {
                    Liveness {
                        offline: false,
                        last_heartbeat_ms: Some(beat(now_ms)),
                    }
                } else {
                    Liveness {
                        offline: true,
                        last_heartbeat_ms: Some(beat(now_ms - (pos - online_ms))),
                    }
                }
            }
            Behaviour::NeverConnected => Liveness {
                offline: true,
                last_heartbeat_ms: None,
            },
            Behaviour::Dead { last_heartbeat_ms } => Liveness {
                offline: true,
                last_heartbeat_ms: Some(last_heartbeat_ms.min(now_ms)),
            },
        }
    }

    /// The id as the 24 lowercase hex digits the APIs use.
    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }

    /// The agent's fake secret: `simtok_` and 32 hex digits, recognisable in any log or page it leaks into.
    pub fn access_token(&self) -> String {
        format!("simtok_{}", self.secret_hex())
    }

    /// The 32 random hex digits of the agent's fake secret, which each provider simulator wraps in its own vendor's
    /// token format.
    pub fn secret_hex(&self) -> String {
        hex(&self.derived::<16>(salt::TOKEN))
    }

    /// A fake server-side hash of [`FleetAgent::access_token`]: 64 hex digits. Not a real hash; only its shape matters.
    pub fn access_token_hash(&self) -> [u8; 32] {
        self.derived(salt::TOKEN_HASH)
    }

    /// The id of the agent's extension/installation record.
    pub fn extension_id(&self) -> [u8; 12] {
        self.derived(salt::EXTENSION)
    }

    /// The integration and connector ids, for an agent of an integration app.
    pub fn integration_ids(&self) -> Option<([u8; 12], [u8; 12])> {
        self.integration_app.then(|| {
            (
                self.derived(salt::INTEGRATION),
                self.derived(salt::CONNECTOR),
            )
        })
    }

    /// The host name the agent reports, e.g. `WIN-00017` or `lnx-00018`.
    pub fn hostname(&self) -> String {
        match self.os {
            Os::Windows => format!("WIN-{:05}", self.index),
            Os::Linux => format!("lnx-{:05}", self.index),
        }
    }

    /// A private IPv4 address for the host, as four octets.
    pub fn ip(&self) -> [u8; 4] {
        let b: [u8; 3] = self.derived(salt::IP);
        [10, b[0], b[1], b[2].max(1)]
    }

    /// When the token was last rotated, or when the agent was created if it never was: the instant clients should
    /// measure the token's age from.
    pub fn token_date_ms(&self) -> i64 {
        self.token_rotated_ms.unwrap_or(self.created_ms)
    }

    fn derived<const N: usize>(&self, salt: u64) -> [u8; N] {
        let mut rng = SplitMix64(self.key ^ salt);
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let bytes = rng.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        out
    }
}

/// Every agent of one simulated account, generated up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    seed: u64,
    anchor_ms: i64,
    /// The middle five bytes every id of this fleet shares (MongoDB's per-process random part).
    fleet_part: [u8; 5],
    /// The id counter of agent 0; agent `i` has `counter_start + i` (mod 2^24), which makes lookup by id O(1).
    counter_start: u32,
    agents: Vec<FleetAgent>,
}

impl Fleet {
    /// Generates `count` agents from `seed`, with ages measured back from `anchor` (normally the simulator's start).
    ///
    /// The same `seed`, `count` and `anchor` give an identical fleet. Ids, names, tokens, kinds, ages and heartbeat
    /// grids depend on `seed` alone; only the absolute instants of creation and rotation move with `anchor`.
    pub fn generate(count: usize, seed: u64, anchor: Timestamp) -> Fleet {
        let mut rng = SplitMix64(mix(seed ^ 0x666c_6565_7400_0000));
        let mut fleet_part = [0u8; 5];
        fleet_part.copy_from_slice(&rng.next().to_le_bytes()[..5]);
        let mut fleet = Fleet {
            seed,
            anchor_ms: anchor.as_millisecond(),
            fleet_part,
            counter_start: (rng.next() & 0x00ff_ffff) as u32,
            agents: Vec::new(),
        };
        fleet.grow_to(count);
        fleet
    }

    /// Adds agents until there are `count`. Existing agents are unchanged; a smaller `count` does nothing.
    pub fn grow_to(&mut self, count: usize) {
        self.agents.reserve(count.saturating_sub(self.agents.len()));
        for index in self.agents.len()..count {
            self.agents.push(FleetAgent::generate(
                self.seed,
                self.fleet_part,
                self.counter_start,
                index,
                self.anchor_ms,
            ));
        }
    }

    pub fn agents(&self) -> &[FleetAgent] {
        &self.agents
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The instant every age was measured back from.
    pub fn anchor(&self) -> Timestamp {
        Timestamp::from_millisecond(self.anchor_ms).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Finds an agent by its 24-hex id, in O(1): the id's counter says where the agent sits.
    pub fn find(&self, id_hex: &str) -> Option<&FleetAgent> {
        let id = parse_hex_id(id_hex)?;
        let counter = u32::from_be_bytes([0, id[9], id[10], id[11]]);
        let index = counter.wrapping_sub(self.counter_start) & 0x00ff_ffff;
        self.agents.get(index as usize).filter(|a| a.id == id)
    }
}

fn weighted_version(roll: u64) -> &'static str {
    let mut left = roll;
    for (version, weight) in VERSIONS {
        if left < *weight {
            return version;
        }
        left -= weight;
    }
    VERSIONS[0].0
}

fn parse_hex_id(s: &str) -> Option<[u8; 12]> {
    let bytes = s.as_bytes();
    if bytes.len() != 24 {
        return None;
    }
    let mut id = [0u8; 12];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        id[i] = (hi * 16 + lo) as u8;
    }
    Some(id)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[(b >> 4) as usize]));
        s.push(char::from(HEX[(b & 0xf) as usize]));
    }
    s
}

pub(crate) const HEX: &[u8; 16] = b"0123456789abcdef";

/// Converts Unix milliseconds to a timestamp, clamping the impossible to the epoch.
pub fn timestamp_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The SplitMix64 finaliser: a good 64-bit mix, used to turn `(seed, index)` into an agent key, and by the provider
/// simulators to derive time-varying figures from an agent key.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64: tiny, fast, and fixed forever, which is what determinism across builds needs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`; `n` must be positive. The modulo bias is irrelevant at these sizes.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[lo, hi)`; returns `lo` when the range is empty.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANCHOR_MS: i64 = 1_763_790_000_000; // 2025-11-22T05:40:00Z

    fn fleet(n: usize, seed: u64) -> Fleet {
        Fleet::generate(n, seed, timestamp_ms(ANCHOR_MS))
    }

    #[test]
    fn the_same_seed_gives_the_same_fleet_and_another_seed_does_not() {
        assert_eq!(fleet(200, 7), fleet(200, 7));
        let a = fleet(200, 7);
        let b = fleet(200, 8);
        let same_ids = a
            .agents()
            .iter()
            .zip(b.agents())
            .filter(|(x, y)| x.id == y.id)
            .count();
        assert_eq!(same_ids, 0, "seeds 7 and 8 share {same_ids} ids");
    }

    #[test]
    fn growing_a_fleet_keeps_the_agents_it_had() {
        let mut grown = fleet(10, 3);
        grown.grow_to(50);
        assert_eq!(grown, fleet(50, 3));
    }

    #[test]
    fn ids_are_unique_and_found_by_lookup() {
        let f = fleet(5_000, 11);
        let mut ids: Vec<String> = f.agents().iter().map(FleetAgent::id_hex).collect();
        for (i, id) in ids.iter().enumerate().step_by(97) {
            assert_eq!(f.find(id).map(|a| a.index), Some(i), "lookup of {id}");
        }
        assert!(f.find("000000000000000000000000").is_none());
        assert!(f.find("not-an-id").is_none());
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 5_000, "duplicate ids");
    }

    #[test]
    fn a_fleet_of_twenty_five_has_every_kind_of_agent() {
        let f = fleet(25, 1);
        let now = ANCHOR_MS + 10_000;
        let lives: Vec<Liveness> = f.agents().iter().map(|a| a.liveness(now)).collect();
        let never = lives
            .iter()
            .filter(|l| l.last_heartbeat_ms.is_none())
            .count();
        let dead = f
            .agents()
            .iter()
            .filter(|a| matches!(a.behaviour, Behaviour::Dead { .. }))
            .count();
        let flapping = f
            .agents()
            .iter()
            .filter(|a| matches!(a.behaviour, Behaviour::Flapping { .. }))
            .count();
        let day = |a: &FleetAgent| (ANCHOR_MS - a.token_date_ms()) / DAY_MS;
        let past_90 = f.agents().iter().filter(|a| day(a) >= 90).count();
        let warn = f
            .agents()
            .iter()
            .filter(|a| (76..90).contains(&day(a)))
            .count();
        let no_rotation = f
            .agents()
            .iter()
            .filter(|a| a.token_rotated_ms.is_none())
            .count();
        let names: Vec<&str> = f.agents().iter().map(|a| &*a.name).collect();
        let summary = format!(
            "never={never} dead={dead} flapping={flapping} past_90={past_90} warn={warn} no_rotation={no_rotation} \
             names={names:?}"
        );
        assert!(never >= 1 && dead >= 1 && flapping >= 2, "{summary}");
        assert!(past_90 >= 2 && warn >= 1 && no_rotation >= 1, "{summary}");
        for awkward in &AWKWARD_NAMES[..6] {
            assert!(
                names.contains(awkward),
                "missing name {awkward:?}: {summary}"
            );
        }
    }

    #[test]
    fn a_steady_agent_beats_about_every_thirty_seconds_and_never_in_the_future() {
        let f = fleet(40, 2);
        for a in f
            .agents()
            .iter()
            .filter(|a| a.behaviour == Behaviour::Steady)
        {
            let mut seen = Vec::new();
            for step in 0..120 {
                let now = ANCHOR_MS + step * 1_000;
                let hb = a.liveness(now).last_heartbeat_ms.unwrap_or(i64::MIN);
                assert!(
                    hb <= now && now - hb < 32_000,
                    "agent {} at {now}: heartbeat {hb}",
                    a.index
                );
                if seen.last() != Some(&hb) {
                    seen.push(hb);
                }
            }
            assert!(
                (4..=6).contains(&seen.len()),
                "agent {}: beats in 2 min {seen:?}",
                a.index
            );
        }
    }

    #[test]
    fn a_flapping_agent_goes_offline_for_about_two_minutes_and_comes_back() {
        let f = fleet(40, 5);
        for a in f
            .agents()
            .iter()
            .filter(|a| matches!(a.behaviour, Behaviour::Flapping { .. }))
        {
            let states: Vec<Liveness> = (0..600)
                .map(|s| a.liveness(ANCHOR_MS + s * 1_000))
                .collect();
            let offline_secs = states.iter().filter(|l| l.offline).count();
            assert!(
                (150..=360).contains(&offline_secs),
                "agent {}: offline {offline_secs}s of 600",
                a.index
            );
            let frozen = states
                .windows(2)
                .all(|w| !(w[0].offline && w[1].offline) || w[0] == w[1]);
            assert!(frozen, "agent {}: heartbeat moved while offline", a.index);
        }
    }
}
