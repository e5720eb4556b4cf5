//! Runs a scenario's timeline inside a simulation: waits for each step's trigger, resolves its
//! targets against the cluster as it is at that moment, and applies it.

use crate::script::{Action, Target, Trigger};
use crate::simulation::{Event, Phase, Simulation};
use crate::trace::What;
use verity_core::{NodeId, Role, Term};

/// Where the timeline stands.
#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    /// Index of the next step to fire.
    pub next: usize,
    /// The highest leader term when the previous step fired.
    armed_term: Term,
    /// Operations completed when the previous step fired.
    armed_ops: u64,
    /// The next step's trigger has happened; it fires after its delay.
    firing: bool,
}

impl Simulation {
    /// Whether every timeline step has fired.
    pub(crate) fn timeline_done(&self) -> bool {
        self.timeline.next >= self.options.timeline.len()
    }

    fn completed_ops(&self) -> u64 {
        self.stats.ops_ok + self.stats.ops_fail + self.stats.ops_info
    }

    fn highest_leader_term(&self) -> Term {
        self.leader_terms
            .keys()
            .next_back()
            .copied()
            .unwrap_or_default()
    }

    /// Starts the timeline: arms the first step.
    pub(crate) fn start_timeline(&mut self) {
        self.arm_timeline();
    }

    fn arm_timeline(&mut self) {
        self.timeline.armed_term = self.highest_leader_term();
        self.timeline.armed_ops = self.completed_ops();
        if let Some(step) = self.options.timeline.get(self.timeline.next)
            && let Trigger::At(at_us) = step.trigger
        {
            self.schedule(at_us.saturating_sub(self.now_us), Event::TimelineCheck);
        }
    }

    /// Fires the next step if its trigger has happened. Called after every event. Steps fire
    /// only in the chaos phase: once the faults heal, a step still waiting for its trigger is
    /// skipped, since faults after the heal would make the liveness check meaningless.
    pub(crate) fn check_timeline(&mut self) {
        let Some(step) = self.options.timeline.get(self.timeline.next) else {
            return;
        };
        if self.timeline.firing || self.phase != Phase::Chaos {
            return;
        }
        let triggered = match step.trigger {
            Trigger::At(at_us) => self.now_us >= at_us,
            Trigger::LeaderElected => self.highest_leader_term() > self.timeline.armed_term,
            Trigger::OpsCompleted(n) => self.completed_ops() >= self.timeline.armed_ops + n,
        };
        if triggered {
            self.timeline.firing = true;
            self.schedule(step.delay_us, Event::TimelineFire);
        }
    }

    /// Applies the next step, then arms the one after it.
    pub(crate) fn fire_timeline_step(&mut self) {
        if self.phase != Phase::Chaos {
            return;
        }
        let step = self.options.timeline[self.timeline.next].clone();
        self.timeline.firing = false;
        self.timeline.next += 1;
        self.record(What::Fault {
            description: format!("timeline {}: {:?}", step.origin, step.action),
        });
        self.apply_action(&step.action);
        self.arm_timeline();
        self.end_chaos_when_done();
    }

    fn live_leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter_map(|n| n.node.as_ref())
            .filter(|n| n.role() == Role::Leader)
            .max_by_key(|n| n.term())
            .map(|n| n.id())
    }

    /// The node `target` names now, if any.
    fn resolve(&mut self, target: Target) -> Option<NodeId> {
        let resolved = match target {
            Target::Node(id) => Some(id),
            Target::Leader => self.live_leader(),
            Target::Follower => {
                let leader = self.live_leader();
                let followers: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|(id, n)| n.node.is_some() && Some(**id) != leader)
                    .map(|(id, _)| *id)
                    .collect();
                (!followers.is_empty()).then(|| *self.rng.pick(&followers))
            }
            Target::Random => {
                let all: Vec<NodeId> = self.nodes.keys().copied().collect();
                Some(*self.rng.pick(&all))
            }
        };
        if resolved.is_none() {
            self.record(What::Fault {
                description: format!("timeline: no node is {target:?} now; step skipped"),
            });
        }
        resolved
    }

    fn others(&self, id: NodeId) -> Vec<NodeId> {
        self.nodes.keys().copied().filter(|&o| o != id).collect()
    }

    fn apply_action(&mut self, action: &Action) {
        match *action {
            Action::Crash(t) => {
                if let Some(id) = self.resolve(t) {
                    self.crash(id);
                }
            }
            Action::Restart(Target::Random | Target::Follower | Target::Leader) => {
                // Only a crashed node can restart: pick one of those.
                let crashed: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.node.is_none())
                    .map(|(id, _)| *id)
                    .collect();
                if !crashed.is_empty() {
                    let id = *self.rng.pick(&crashed);
                    self.restart(id);
                }
            }
            Action::Restart(Target::Node(id)) => self.restart(id),
            Action::Pause(t) => {
                if let Some(id) = self.resolve(t) {
                    self.pause(id);
                }
            }
            Action::Resume(t) => {
                if let Some(id) = self.resolve(t) {
                    self.resume(id);
                }
            }
            Action::Isolate(t) => {
                if let Some(id) = self.resolve(t) {
                    let others = self.others(id);
                    self.cut_between(&[id], &others, true);
                }
            }
            Action::Split(ref groups) => {
                let listed: Vec<NodeId> = groups.iter().flatten().copied().collect();
                let mut groups = groups.clone();
                groups.extend(
                    self.nodes
                        .keys()
                        .filter(|id| !listed.contains(id))
                        .map(|&id| vec![id]),
                );
                for (i, left) in groups.iter().enumerate() {
                    for right in &groups[i + 1..] {
                        self.cut_between(left, right, true);
                    }
                }
            }
            Action::Cut(from, to) => {
                if let (Some(a), Some(b)) = (self.resolve(from), self.resolve(to)) {
                    self.network.set_cut(a, b, true);
                }
            }
            Action::Slow(from, to, latency_us) => {
                if let (Some(a), Some(b)) = (self.resolve(from), self.resolve(to)) {
                    self.slow_between(a, &[b], latency_us);
                }
            }
            Action::Heal => {
                self.network.heal_links();
                let paused: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.paused)
                    .map(|(id, _)| *id)
                    .collect();
                for id in paused {
                    self.resume(id);
                }
            }
            Action::PartitionLeaderMinority => {
                if let Some(leader) = self.resolve(Target::Leader) {
                    let minority = (self.nodes.len() - 1) / 2;
                    let mut others = self.others(leader);
                    self.rng.shuffle(&mut others);
                    let (with_leader, majority) = others.split_at(minority.saturating_sub(1));
                    let mut left = vec![leader];
                    left.extend_from_slice(with_leader);
                    self.cut_between(&left, majority, true);
                }
            }
            Action::Transfer(Target::Leader) => self.record(What::Fault {
                description: "timeline: a leader cannot hand over to itself; step skipped".into(),
            }),
            Action::Transfer(t) => {
                if let Some(to) = self.resolve(t) {
                    self.transfer_leadership(Some(to));
                }
            }
            Action::Flap {
                target,
                every_us,
                lasting_us,
            } => {
                if let Some(id) = self.resolve(target) {
                    let until_us = self.now_us + lasting_us;
                    self.flap(id, every_us, until_us, true);
                }
            }
        }
    }

    /// One flip of a flapping partition: cut `id` off (or reconnect it), then schedule the next
    /// flip, until `until_us`, when it ends reconnected.
    pub(crate) fn flap(&mut self, id: NodeId, every_us: u64, until_us: u64, cut: bool) {
        // The heal ends the flapping too: nothing fails after it.
        let flapping = self.now_us < until_us && self.phase == Phase::Chaos;
        let others = self.others(id);
        self.cut_between(&[id], &others, cut && flapping);
        if flapping {
            self.schedule(
                every_us,
                Event::Flap {
                    node: id,
                    every_us,
                    until_us,
                    cut: !cut,
                },
            );
        }
    }
}
