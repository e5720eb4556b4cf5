//! A scripted run: the timeline of faults a scenario file describes (each step a trigger, a
//! delay and an action on nodes chosen when it fires) and what every seed of it must show.
//! Scenario files parse into these ([`crate::scenario`]), run options carry them
//! ([`crate::options::SimOptions`]), and the simulation carries the steps out
//! (`crate::timeline`).

use verity_core::NodeId;

/// Which node an action applies to, resolved when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A fixed node.
    Node(NodeId),
    /// The current leader (the live leader of the highest term).
    Leader,
    /// A live node that is not the leader.
    Follower,
    /// Any node.
    Random,
}

/// When a timeline step fires, relative to the step before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// At this virtual time (microseconds since the start).
    At(u64),
    /// When a leader of a newer term than at the previous step is elected.
    LeaderElected,
    /// When this many more operations have completed.
    OpsCompleted(u64),
}

/// What a timeline step does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Crash a node (its unsynced writes meet their seeded fate).
    Crash(Target),
    /// Restart a crashed node (`random` picks one of the crashed nodes).
    Restart(Target),
    /// Stop a node taking steps.
    Pause(Target),
    /// Let a paused node run again.
    Resume(Target),
    /// Cut a node off from every other node, both ways.
    Isolate(Target),
    /// Split the cluster into groups that cannot talk to each other.
    Split(Vec<Vec<NodeId>>),
    /// Cut the one-way link `from -> to`.
    Cut(Target, Target),
    /// Add latency to both directions of the link between two nodes.
    Slow(Target, Target, u64),
    /// Heal every cut and slow link and resume paused nodes.
    Heal,
    /// Put the leader in a minority group and the rest in the majority.
    PartitionLeaderMinority,
    /// Ask the leader to hand its leadership to `target` (a follower).
    Transfer(Target),
    /// Isolate `target` and heal it again every `every` microseconds, for `lasting`.
    Flap {
        /// The node cut off and reconnected.
        target: Target,
        /// Time between flips.
        every_us: u64,
        /// How long the flapping lasts.
        lasting_us: u64,
    },
}

/// One timeline step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What starts it.
    pub trigger: Trigger,
    /// How long after the trigger it acts.
    pub delay_us: u64,
    /// What it does.
    pub action: Action,
    /// Where it was written, for reports (`file:line`).
    pub origin: String,
}

/// What a scenario expects of every seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectations {
    /// The history must be linearizable.
    pub linearizable: bool,
    /// After the final heal, every client completes its operations within this time.
    pub progress_within_us: Option<u64>,
    /// At most this many terms may have a leader.
    pub max_elections: Option<u64>,
    /// The run must fail a check (a regression test for a catalogued bug).
    pub must_fail: bool,
}

impl Default for Expectations {
    fn default() -> Expectations {
        Expectations {
            linearizable: true,
            progress_within_us: None,
            max_elections: None,
            must_fail: false,
        }
    }
}
