//! The state machine as bytes: what a snapshot holds, and how a replica is rebuilt from it.
//!
//! An image holds everything the state machine is (the applied index, the digest trail, the
//! store's time, every key with its value, version and deadline, every session with what it
//! remembers) and nothing derived: indexes are rebuilt on load. The encoding is the project's
//! bincode ([`crate::codec::encode_image`]) over ordered maps, so replicas that applied the
//! same prefix produce byte-identical images. Loading treats the bytes as untrusted: a forged
//! length cannot allocate, and a state no replica could reach is refused with a reason.

use super::session::{Session, SessionTable};
use super::store::Store;
use super::{StateMachine, Versioned};
use crate::codec;
use crate::config::SessionLimits;
use crate::types::{ClientId, LogIndex};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bytes that are not the image of a state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot image is invalid: {reason}")]
pub struct ImageError {
    /// What is wrong with it.
    pub reason: String,
}

/// The image as encoded, borrowing from the state machine.
#[derive(Serialize)]
struct ImageRef<'a> {
    applied: LogIndex,
    trail: u64,
    now_ms: u64,
    keys: &'a BTreeMap<Vec<u8>, Versioned>,
    sessions: &'a BTreeMap<ClientId, Session>,
}

/// The image as decoded.
#[derive(Deserialize)]
struct Image {
    applied: LogIndex,
    trail: u64,
    now_ms: u64,
    keys: BTreeMap<Vec<u8>, Versioned>,
    sessions: BTreeMap<ClientId, Session>,
}

impl StateMachine {
    /// The image of everything the state machine holds, as of its applied index.
    #[must_use]
    pub fn image(&self) -> Vec<u8> {
        codec::encode_image(&ImageRef {
            applied: self.applied,
            trail: self.trail,
            now_ms: self.store.now_ms(),
            keys: self.store.map(),
            sessions: self.sessions.map(),
        })
    }

    /// The state machine an [`StateMachine::image`] describes, with this node's bounds
    /// (`limits`, `max_value_bytes`, which every replica shares). Fails on bytes that are not
    /// an image or describe a state no replica reaches (a version past the applied index, two
    /// sessions with one token, ...).
    pub fn from_image(
        limits: SessionLimits,
        max_value_bytes: u64,
        bytes: &[u8],
    ) -> Result<StateMachine, ImageError> {
        let invalid = |reason: String| ImageError { reason };
        let image: Image =
            codec::decode_image(bytes).map_err(|error| invalid(error.to_string()))?;
        if let Some((key, value)) = image.keys.iter().find(|(_, v)| v.version > image.applied) {
            return Err(invalid(format!(
                "key {:?} has version {}, past the applied index {}",
                String::from_utf8_lossy(key),
                value.version,
                image.applied
            )));
        }
        let store = Store::from_map(image.keys, image.now_ms).map_err(invalid)?;
        let sessions =
            SessionTable::from_map(limits, image.sessions, image.applied).map_err(invalid)?;
        let mut machine = StateMachine::new(limits, max_value_bytes);
        machine.store = store;
        machine.sessions = sessions;
        machine.applied = image.applied;
        machine.trail = image.trail;
        Ok(machine)
    }

    /// [`StateMachine::from_image`] of a snapshot that stands for the log up to `index`: the
    /// image must also be of a state machine that applied exactly that far.
    pub fn from_snapshot_image(
        limits: SessionLimits,
        max_value_bytes: u64,
        bytes: &[u8],
        index: LogIndex,
    ) -> Result<StateMachine, ImageError> {
        let machine = StateMachine::from_image(limits, max_value_bytes, bytes)?;
        if machine.applied != index {
            return Err(ImageError {
                reason: format!(
                    "the snapshot stands for the log up to index {index}, but its state machine \
                     applied up to {}",
                    machine.applied
                ),
            });
        }
        Ok(machine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{ClientOp, ClientRequest, Command, SessionToken};
    use crate::types::Sequence;

    fn limits() -> SessionLimits {
        crate::Config::new(crate::NodeId(1), [crate::NodeId(1)], 0).sessions
    }

    /// A state machine with a session, plain keys and a key with a deadline.
    fn machine() -> StateMachine {
        let mut machine = StateMachine::new(limits(), 1 << 20);
        let token = SessionToken([7; 16]);
        machine.apply(LogIndex(1), 1_000, Some(&ClientOp::OpenSession { token }));
        let words = |w: &[&str]| w.iter().map(|s| s.as_bytes().to_vec()).collect();
        let commands = [
            Command::set("a", "1"),
            Command::set("b", "2"),
            Command::parse(words(&["SET", "lock", "me", "PX", "5000"])).unwrap(),
        ];
        for (i, command) in commands.into_iter().enumerate() {
            let request = ClientOp::Request(ClientRequest {
                client: ClientId(1),
                token,
                may_skip_earlier: false,
                sequence: Sequence(i as u64 + 1),
                command,
            });
            machine.apply(LogIndex(i as u64 + 2), 2_000, Some(&request));
        }
        machine
    }

    #[test]
    fn an_image_rebuilds_the_same_state_machine() {
        let original = machine();
        let image = original.image();
        let rebuilt = StateMachine::from_image(limits(), 1 << 20, &image).unwrap();
        assert_eq!(rebuilt, original, "indexes and byte counts rebuilt exactly");
        assert_eq!(rebuilt.digest(), original.digest());
        assert_eq!(rebuilt.image(), image, "one image per state");
    }

    #[test]
    fn a_cut_or_damaged_image_is_refused_not_trusted() {
        let image = machine().image();
        for cut in 0..image.len() {
            assert!(StateMachine::from_image(limits(), 1 << 20, &image[..cut]).is_err());
        }
        let mut forged = image.clone();
        forged[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(
            StateMachine::from_image(limits(), 1 << 20, &forged).is_err(),
            "a forged length fails within the bytes given"
        );
    }

    #[test]
    fn an_image_of_an_unreachable_state_is_refused_with_the_reason() {
        let original = machine();
        let image = codec::encode_image(&ImageRef {
            applied: LogIndex(2),
            trail: original.trail(),
            now_ms: original.store.now_ms(),
            keys: original.store.map(),
            sessions: original.sessions.map(),
        });
        let error = StateMachine::from_image(limits(), 1 << 20, &image).unwrap_err();
        assert!(error.reason.contains("past the applied index"), "{error}");
    }
}
