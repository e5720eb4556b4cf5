//! The nemesis: injects the faults of the run's [`crate::options::FaultPlan`] at random times
//! during the chaos phase, and heals each after a random duration (or all at the end of chaos).
//!
//! At most one partition-type fault (partition or one-way cut) and one burst of each network
//! kind is active at a time, so that healing one never undoes another.

use crate::options::FaultKind;
use crate::simulation::{Event, Phase, Simulation};
use crate::trace::What;
use verity_core::NodeId;

/// A fault in force, with what it takes to heal it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ActiveFault {
    Crashed(NodeId),
    Paused(NodeId),
    Cut {
        kind: FaultKind,
        links: Vec<(NodeId, NodeId)>,
    },
    Burst(FaultKind),
    Slow(NodeId),
}

impl ActiveFault {
    fn kind(&self) -> FaultKind {
        match self {
            ActiveFault::Crashed(_) => FaultKind::Crash,
            ActiveFault::Paused(_) => FaultKind::Pause,
            ActiveFault::Cut { kind, .. } => *kind,
            ActiveFault::Burst(kind) => *kind,
            ActiveFault::Slow(_) => FaultKind::Slow,
        }
    }
}

impl Simulation {
    pub(crate) fn on_nemesis(&mut self) {
        if self.phase != Phase::Chaos {
            return;
        }
        if self.plan.transfer_per_mille > 0 && self.rng.chance(self.plan.transfer_per_mille) {
            self.transfer_leadership(None);
        }
        let kinds: Vec<FaultKind> = self.plan.enabled.iter().copied().collect();
        let kind = *self.rng.pick(&kinds);
        if let Some(fault) = self.inject(kind) {
            self.activate(fault);
        }
        let gap = self
            .rng
            .between(self.plan.nemesis_min_us, self.plan.nemesis_max_us);
        self.schedule(gap, Event::Nemesis);
    }

    /// Counts `fault` (injected) and schedules its healing.
    fn activate(&mut self, fault: ActiveFault) {
        self.count_fault(fault.kind().name());
        let id = self.next_fault_id;
        self.next_fault_id += 1;
        self.active_faults.insert(id, fault);
        let duration = self
            .rng
            .between(self.plan.fault_max_us / 10, self.plan.fault_max_us);
        self.schedule(duration, Event::HealFault { id });
    }

    /// Crashes leader `id` of incarnation `incarnation` just after it answered clients, if
    /// the chaos goes on, crashes are enabled and another node may go down.
    pub(crate) fn crash_after_ack(&mut self, id: NodeId, incarnation: u64) {
        let sim_node = &self.nodes[&id];
        let leads = sim_node
            .node
            .as_ref()
            .is_some_and(|node| node.role() == verity_core::Role::Leader);
        if self.phase != Phase::Chaos
            || !leads
            || sim_node.paused
            || sim_node.incarnation != incarnation
            || !self.plan.enabled.contains(&FaultKind::Crash)
            || self.down() >= self.plan.max_down
        {
            return;
        }
        self.crash(id);
        self.record(What::Fault {
            description: format!("inject Crashed({id}) just after it answered clients"),
        });
        self.activate(ActiveFault::Crashed(id));
    }

    /// Leader `id` just told a node to take over: it stops hearing every other node (a one-way
    /// cut, healed like any fault), if the chaos goes on and no other cut is in force. See
    /// [`crate::options::FaultPlan::deafen_after_transfer`].
    pub(crate) fn deafen(&mut self, id: NodeId) {
        if self.phase != Phase::Chaos || self.cut_in_force() {
            return;
        }
        let links: Vec<(NodeId, NodeId)> = self
            .nodes
            .keys()
            .filter(|&&other| other != id)
            .map(|&other| (other, id))
            .collect();
        let fault = self.cut(FaultKind::OneWay, links);
        self.record(What::Fault {
            description: format!("inject {fault:?} just after {id} handed over"),
        });
        self.activate(fault);
    }

    /// Asks the live leader, if there is one, to hand its leadership to `to` (a random live
    /// follower if `None`), as an operator or a stopping node would.
    pub(crate) fn transfer_leadership(&mut self, to: Option<NodeId>) {
        let leaders = self.nodes_where(|n| {
            !n.paused
                && n.node
                    .as_ref()
                    .is_some_and(|node| node.role() == verity_core::Role::Leader)
        });
        let Some(&leader) = leaders.first() else {
            return;
        };
        let to = match to {
            Some(to) => to,
            None => {
                let followers = self.nodes_where(|n| n.node.is_some());
                let followers: Vec<NodeId> =
                    followers.into_iter().filter(|&id| id != leader).collect();
                if followers.is_empty() {
                    return;
                }
                *self.rng.pick(&followers)
            }
        };
        let node = self.nodes.get_mut(&leader).and_then(|n| n.node.as_mut());
        let outcome = node.map(|node| node.transfer_leadership(to));
        self.count_fault("transfer");
        self.record(What::Fault {
            description: format!("transfer leadership {leader} -> {to}: {outcome:?}"),
        });
        self.process(leader);
    }

    fn nodes_where(&self, wanted: impl Fn(&crate::simulation::SimNode) -> bool) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| wanted(n))
            .map(|(&id, _)| id)
            .collect()
    }

    /// Nodes crashed or paused now.
    fn down(&self) -> u64 {
        self.nodes
            .values()
            .filter(|n| n.node.is_none() || n.paused)
            .count() as u64
    }

    fn kind_active(&self, kind: FaultKind) -> bool {
        self.active_faults.values().any(|f| f.kind() == kind)
    }

    /// Whether a partition or a one-way cut is in force (at most one at a time).
    fn cut_in_force(&self) -> bool {
        self.kind_active(FaultKind::Partition) || self.kind_active(FaultKind::OneWay)
    }

    /// Cuts the one-way `links`, as a fault of `kind` to activate.
    fn cut(&mut self, kind: FaultKind, links: Vec<(NodeId, NodeId)>) -> ActiveFault {
        for &(a, b) in &links {
            self.network.set_cut(a, b, true);
        }
        ActiveFault::Cut { kind, links }
    }

    /// Injects a fault of `kind`, if one can be injected now.
    fn inject(&mut self, kind: FaultKind) -> Option<ActiveFault> {
        let fault = match kind {
            FaultKind::Crash | FaultKind::Pause if self.down() >= self.plan.max_down => {
                return None;
            }
            FaultKind::Crash => {
                let live = self.nodes_where(|n| n.node.is_some());
                if live.is_empty() {
                    return None;
                }
                let leader_with_suffix = self.nodes_where(|n| {
                    n.node.as_ref().is_some_and(|node| {
                        node.role() == verity_core::Role::Leader
                            && node.log().last_index() > node.commit_index()
                    })
                });
                let victim = match leader_with_suffix.first() {
                    Some(&leader)
                        if self.plan.leader_crash_per_mille > 0
                            && self.rng.chance(self.plan.leader_crash_per_mille) =>
                    {
                        leader
                    }
                    _ => *self.rng.pick(&live),
                };
                self.crash(victim);
                return Some(ActiveFault::Crashed(victim));
            }
            FaultKind::Pause => {
                let running = self.nodes_where(|n| n.node.is_some() && !n.paused);
                if running.is_empty() {
                    return None;
                }
                let victim = *self.rng.pick(&running);
                self.pause(victim);
                ActiveFault::Paused(victim)
            }
            FaultKind::Partition | FaultKind::OneWay => {
                if self.cut_in_force() || self.nodes.len() < 2 {
                    return None;
                }
                let mut ids: Vec<NodeId> = self.nodes.keys().copied().collect();
                self.rng.shuffle(&mut ids);
                let links = if kind == FaultKind::Partition {
                    let split = self.rng.between(1, ids.len() as u64 - 1) as usize;
                    let (left, right) = ids.split_at(split);
                    let mut links = Vec::new();
                    for &a in left {
                        for &b in right {
                            links.push((a, b));
                            links.push((b, a));
                        }
                    }
                    links
                } else if self.rng.chance(500) {
                    vec![(ids[0], ids[1])]
                } else {
                    // One node can send to everyone but hears from no one.
                    ids[1..].iter().map(|&other| (other, ids[0])).collect()
                };
                self.cut(kind, links)
            }
            FaultKind::Loss | FaultKind::Duplicate | FaultKind::Reorder => {
                if self.kind_active(kind) {
                    return None;
                }
                let o = &mut self.network.options;
                match kind {
                    FaultKind::Loss => o.drop_per_mille = self.rng.between(100, 500),
                    FaultKind::Duplicate => o.duplicate_per_mille = self.rng.between(200, 600),
                    _ => {
                        o.reorder_per_mille = self.rng.between(300, 900);
                        o.reorder_delay_max_us = self.rng.between(10_000, 100_000);
                    }
                }
                ActiveFault::Burst(kind)
            }
            FaultKind::Slow => {
                let candidates = self.nodes_where(|_| true);
                let slow = *self.rng.pick(&candidates);
                if self
                    .active_faults
                    .values()
                    .any(|f| *f == ActiveFault::Slow(slow))
                {
                    return None;
                }
                let extra = self.rng.between(20_000, 300_000);
                let others: Vec<NodeId> = candidates.into_iter().filter(|&o| o != slow).collect();
                self.slow_between(slow, &others, extra);
                ActiveFault::Slow(slow)
            }
        };
        self.record(What::Fault {
            description: format!("inject {fault:?}"),
        });
        Some(fault)
    }

    /// Heals fault `id` if it is still active.
    pub(crate) fn heal_fault(&mut self, id: u64) {
        let Some(fault) = self.active_faults.remove(&id) else {
            return;
        };
        match &fault {
            ActiveFault::Crashed(node) => {
                self.restart(*node);
                return;
            }
            ActiveFault::Paused(node) => {
                self.resume(*node);
                return;
            }
            ActiveFault::Cut { links, .. } => {
                for &(a, b) in links {
                    self.network.set_cut(a, b, false);
                }
            }
            ActiveFault::Burst(kind) => {
                let (o, base) = (&mut self.network.options, self.plan.network);
                match kind {
                    FaultKind::Loss => o.drop_per_mille = base.drop_per_mille,
                    FaultKind::Duplicate => o.duplicate_per_mille = base.duplicate_per_mille,
                    _ => {
                        o.reorder_per_mille = base.reorder_per_mille;
                        o.reorder_delay_max_us = base.reorder_delay_max_us;
                    }
                }
            }
            ActiveFault::Slow(slow) => {
                let all = self.nodes_where(|_| true);
                self.slow_between(*slow, &all, 0);
            }
        }
        self.record(What::Fault {
            description: format!("heal {fault:?}"),
        });
    }

    /// Heals every active fault and calms the network (the start of the settle phase).
    pub(crate) fn heal_all(&mut self) {
        let ids: Vec<u64> = self.active_faults.keys().copied().collect();
        for id in ids {
            self.heal_fault(id);
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.restart(id);
            self.resume(id);
        }
        self.network.heal_links();
        self.network.options = crate::network::NetworkOptions {
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            reorder_per_mille: 0,
            ..self.plan.network
        };
        self.record(What::Fault {
            description: "heal all: every fault healed, network calm".to_string(),
        });
    }
}
