//! Each node's condition (running, paused or down, and which nodes it cannot hear) as trace
//! events, for pictures of a run. Only computed when the run keeps its trace events, and not
//! part of the trace hash, so a replay hashes exactly as the run it replays.

use crate::simulation::Simulation;
use crate::trace::What;
use verity_core::NodeId;

/// A node's condition as last noted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Condition {
    running: &'static str,
    unheard: Vec<u64>,
}

impl Simulation {
    /// Notes every node whose condition changed since it was last noted. Called after every
    /// event of a run that keeps its trace.
    pub(crate) fn note_conditions(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for &id in &ids {
            let sim_node = &self.nodes[&id];
            let running = match (&sim_node.node, sim_node.paused) {
                (None, _) => "down",
                (Some(_), true) => "paused",
                (Some(_), false) => "running",
            };
            let unheard: Vec<u64> = ids
                .iter()
                .filter(|&&from| from != id && !self.network.connected(from, id))
                .map(|from| from.0)
                .collect();
            let now = Condition { running, unheard };
            if self.conditions.get(&id) != Some(&now) {
                self.trace.note(
                    self.now_us,
                    What::Condition {
                        node: id.0,
                        running: now.running,
                        unheard: now.unheard.clone(),
                    },
                );
                self.conditions.insert(id, now);
            }
        }
    }
}
