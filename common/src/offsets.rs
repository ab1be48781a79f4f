//! Offset tracking for commits: a partition's committed position never passes a record
//! whose outcome is not yet durable, however out of order the outcomes complete.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// A record whose outcome is pending; hand it back to [`OffsetTracker::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket<K> {
    pub partition: K,
    pub offset: i64,
    epoch: u64,
}

#[derive(Debug, Default)]
struct PartitionState {
    epoch: u64,
    pending: BTreeSet<i64>,
    /// Offset after the highest record taken, the commit position once nothing is pending.
    next: Option<i64>,
    committed: Option<i64>,
}

/// Tracks pending records per partition; `K` names a partition, such as (topic, partition).
#[derive(Debug)]
pub struct OffsetTracker<K> {
    partitions: HashMap<K, PartitionState>,
    epochs: u64,
}

impl<K> Default for OffsetTracker<K> {
    fn default() -> Self {
        OffsetTracker {
            partitions: HashMap::new(),
            epochs: 0,
        }
    }
}

impl<K: Hash + Eq + Ord + Clone> OffsetTracker<K> {
    /// Records that `offset` of `partition` was taken and its outcome is pending.
    pub fn begin(&mut self, partition: K, offset: i64) -> Ticket<K> {
        let epochs = &mut self.epochs;
        let state = self.partitions.entry(partition.clone()).or_insert_with(|| {
            *epochs += 1;
            PartitionState {
                epoch: *epochs,
                ..PartitionState::default()
            }
        });
        state.pending.insert(offset);
        state.next = Some(state.next.map_or(offset + 1, |next| next.max(offset + 1)));
        Ticket {
            partition,
            offset,
            epoch: state.epoch,
        }
    }

    /// Records that the outcome of a ticket's record is durable. Tickets of a partition that
    /// was revoked in the meantime are ignored.
    pub fn complete(&mut self, ticket: &Ticket<K>) {
        if let Some(state) = self.partitions.get_mut(&ticket.partition) {
            if state.epoch == ticket.epoch {
                state.pending.remove(&ticket.offset);
            }
        }
    }

    /// Forgets a partition, for example when a rebalance revokes it.
    pub fn revoke(&mut self, partition: &K) {
        self.partitions.remove(partition);
    }

    /// Positions that may be committed and were not committed yet: per partition, the lowest
    /// pending offset, or the offset after the highest taken when nothing is pending.
    pub fn committable(&self) -> Vec<(K, i64)> {
        let mut positions: Vec<(K, i64)> = self
            .partitions
            .iter()
            .filter_map(|(partition, state)| {
                let position = state.pending.first().copied().or(state.next)?;
                (state.committed != Some(position)).then(|| (partition.clone(), position))
            })
            .collect();
        positions.sort_unstable();
        positions
    }

    /// Records that `position` of `partition` was committed.
    pub fn mark_committed(&mut self, partition: &K, position: i64) {
        if let Some(state) = self.partitions.get_mut(partition) {
            state.committed = Some(position);
        }
    }

    /// Forgets that a partition was committed, so that the next commit sends it again.
    pub fn commit_failed(&mut self, partition: &K) {
        if let Some(state) = self.partitions.get_mut(partition) {
            state.committed = None;
        }
    }

    /// Number of records whose outcome is pending.
    pub fn pending(&self) -> usize {
        self.partitions
            .values()
            .map(|state| state.pending.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commits_up_to_first_pending() {
        let mut tracker = OffsetTracker::<i32>::default();
        let first = tracker.begin(0, 10);
        let second = tracker.begin(0, 11);
        tracker.complete(&second);
        assert_eq!(tracker.committable(), vec![(0, 10)]);
        tracker.complete(&first);
        assert_eq!(tracker.committable(), vec![(0, 12)]);
        tracker.mark_committed(&0, 12);
        assert!(tracker.committable().is_empty());
    }

    #[test]
    fn ignores_tickets_from_before_revoke() {
        let mut tracker = OffsetTracker::<i32>::default();
        let stale = tracker.begin(1, 5);
        tracker.revoke(&1);
        let fresh = tracker.begin(1, 5);
        tracker.complete(&stale);
        assert_eq!(tracker.committable(), vec![(1, 5)]);
        tracker.complete(&fresh);
        assert_eq!(tracker.committable(), vec![(1, 6)]);
    }

    proptest! {
        /// Whatever order outcomes complete in, the committable position never passes a
        /// pending record and reaches the end once all are complete.
        #[test]
        fn never_commits_past_pending(order in Just((0..40i64).collect::<Vec<_>>()).prop_shuffle()) {
            let mut tracker = OffsetTracker::<i32>::default();
            let tickets: Vec<Ticket<i32>> = (0..40).map(|offset| tracker.begin(0, offset)).collect();
            let mut done = BTreeSet::new();
            for offset in order {
                tracker.complete(&tickets[offset as usize]);
                done.insert(offset);
                let expected = (0..40).find(|offset| !done.contains(offset)).unwrap_or(40);
                let position = tracker.committable().first().map(|(_, position)| *position);
                prop_assert_eq!(position, Some(expected));
            }
            prop_assert_eq!(tracker.pending(), 0);
        }
    }
}
