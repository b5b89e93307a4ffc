//! The notification log's undo record: what one evaluation changed in the log, so that a hand-over the sink refused
//! can be rolled back and the next evaluation produces the same notifications with the same ids. (The log itself,
//! groups and sequences, is part of [`crate::rules::state::State`], saved in the state file.)

use std::collections::BTreeMap;

use crate::domain::Alert;
use crate::rules::state::{GroupLog, State};

/// The notification log as it was before one evaluation's flushes.
#[derive(Debug, Default)]
pub struct Undo {
    /// The groups before the flushes.
    pub groups: BTreeMap<String, GroupLog>,
    /// The sequences before the flushes.
    pub sequences: BTreeMap<String, u64>,
    /// Resolved alerts that the flushes removed because their notice was handed over.
    pub removed: Vec<Alert>,
}

impl Undo {
    /// Records the log of `state` as it is now.
    pub fn record(state: &State) -> Undo {
        Undo {
            groups: state.groups.clone(),
            sequences: state.sequences.clone(),
            removed: Vec::new(),
        }
    }

    /// Puts the recorded log and the removed alerts back into `state`. Alert lifecycles stay as they are.
    pub fn apply(self, state: &mut State) {
        state.groups = self.groups;
        state.sequences = self.sequences;
        for a in self.removed {
            state.alerts.insert(a.key(), a);
        }
    }
}
