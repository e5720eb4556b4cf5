//! Pure majority arithmetic: the two decisions on which Raft's safety rests.

use crate::types::{LogIndex, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// The smallest number of voters that forms a majority of `voters`.
#[must_use]
pub fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The highest index stored on a majority, given each voter's matched index (one per voter).
/// The caller still checks that the entry there is of the current term before committing it.
#[must_use]
pub fn committed_index(mut matched: Vec<LogIndex>) -> LogIndex {
    assert!(!matched.is_empty(), "a cluster has at least one voter");
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched[majority(matched.len()) - 1]
}

/// Where an election stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A majority granted.
    Won,
    /// A majority refused: the election cannot be won.
    Lost,
    /// Neither yet.
    Pending,
}

/// Tallies `votes` (voter → granted) among `voters`; votes from non-voters do not count.
#[must_use]
pub fn vote_result(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let needed = majority(voters.len());
    let counted = votes.iter().filter(|(voter, _)| voters.contains(voter));
    let granted = counted.clone().filter(|(_, granted)| **granted).count();
    let refused = counted.filter(|(_, granted)| !**granted).count();
    if granted >= needed {
        VoteResult::Won
    } else if refused >= needed {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexes(values: &[u64]) -> Vec<LogIndex> {
        values.iter().map(|&v| LogIndex(v)).collect()
    }

    #[test]
    fn committed_index_is_the_majority_th_highest_match() {
        let table: &[(&[u64], u64)] = &[
            (&[5], 5),
            (&[5, 3], 3),
            (&[5, 3, 1], 3),
            (&[1, 5, 3], 3),
            (&[7, 7, 0, 0], 0),
            (&[7, 7, 7, 0], 7),
            (&[9, 8, 7, 6, 5], 7),
            (&[0, 0, 0, 9, 9], 0),
        ];
        for (matched, want) in table {
            assert_eq!(
                committed_index(indexes(matched)),
                LogIndex(*want),
                "{matched:?}"
            );
        }
    }

    #[test]
    fn vote_result_needs_a_majority_either_way() {
        let voters: BTreeSet<NodeId> = (1..=5).map(NodeId).collect();
        let tally = |granted: &[u64], refused: &[u64]| {
            let mut votes = BTreeMap::new();
            votes.extend(granted.iter().map(|&n| (NodeId(n), true)));
            votes.extend(refused.iter().map(|&n| (NodeId(n), false)));
            vote_result(&voters, &votes)
        };
        assert_eq!(tally(&[1, 2], &[]), VoteResult::Pending);
        assert_eq!(tally(&[1, 2, 3], &[]), VoteResult::Won);
        assert_eq!(tally(&[1], &[2, 3, 4]), VoteResult::Lost);
        assert_eq!(tally(&[1, 2], &[3, 4]), VoteResult::Pending);
        assert_eq!(
            tally(&[1, 2, 9], &[]),
            VoteResult::Pending,
            "non-voters do not count"
        );
    }
}
