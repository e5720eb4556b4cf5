//! The client-visible vocabulary of the state machine: what a client proposes and what it is
//! told.
//!
//! These types travel in log entries and client replies, so they are serde types and must stay
//! backwards compatible once released.

use super::cmd::Command;
use super::frame::Frame;
use crate::types::{ClientId, Sequence};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The secret that proves a request belongs to its session: 128 random bits chosen by the
/// node that opens the session and handed only to that client. A request with the wrong token
/// is refused, so knowing (or walking) session ids is not enough to take one over.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct SessionToken(pub [u8; 16]);

impl fmt::Display for SessionToken {
    /// 32 lower-case hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl SessionToken {
    /// Parses the 32 hex digits [`fmt::Display`] writes.
    #[must_use]
    pub fn parse(text: &[u8]) -> Option<SessionToken> {
        if text.len() != 32 {
            return None;
        }
        let mut bytes = [0; 16];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks(2)) {
            *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(SessionToken(bytes))
    }
}

/// A command within an exactly-once session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// The session, as returned by [`Reply::SessionOpened`].
    pub client: ClientId,
    /// The session's secret.
    pub token: SessionToken,
    /// The request's number within the session; a retry reuses it, with the same command.
    pub sequence: Sequence,
    /// Whether the client gave up on every earlier number of the session it has not seen
    /// execute (it reported them to its user as failed or of unknown outcome). Without it, a
    /// request may not run ahead of an earlier number that has not executed yet
    /// ([`SessionError::Early`]); with it, the request runs and those earlier numbers are
    /// refused for good if they arrive later ([`SessionError::OutOfOrder`]). Either way a
    /// session's commands take effect in the order of their numbers.
    pub may_skip_earlier: bool,
    /// What to do.
    pub command: Command,
}

/// What a client proposes to the replicated state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOp {
    /// Open a new session guarded by `token`. It has no other effect, so retrying it is
    /// harmless: a duplicate only opens another session that will expire unused.
    OpenSession {
        /// The new session's secret.
        token: SessionToken,
    },
    /// Execute a command at most once within a session.
    Request(ClientRequest),
    /// Continue session `client` on a new connection: proves the token and learns the
    /// highest sequence number that executed, so the connection numbers its commands after
    /// it. It executes nothing.
    Resume {
        /// The session.
        client: ClientId,
        /// Its secret.
        token: SessionToken,
    },
}

/// Why a session request was refused. **Nothing was executed by this attempt**; what each
/// variant says about earlier attempts differs, and is what a client must be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SessionError {
    /// The session was never opened, expired or was evicted. Earlier attempts of this request
    /// may or may not have executed, and that can no longer be learnt.
    #[error("the session is unknown (expired or evicted)")]
    UnknownSession,
    /// The request's token is not the session's.
    #[error("the session token does not match")]
    WrongToken,
    /// The sequence number is older than the session's window: an earlier attempt may or may
    /// not have executed, and its outcome is no longer kept.
    #[error("the sequence number is older than the session's reply window")]
    SequenceTooOld,
    /// This sequence number executed before, but its reply is not kept (a read followed by
    /// a later number of its session, or a reply evicted by the byte bounds).
    #[error("the request executed before, but its reply is not kept")]
    ReplyNotKept,
    /// This sequence number executed before with a different command: the retry is not the
    /// same request.
    #[error("the sequence number was used by a different command")]
    DifferentCommand,
    /// A later sequence number of the session already executed and this one never did;
    /// executing it now would break the session's order. It will never execute.
    #[error("a later command of the session already executed")]
    OutOfOrder,
    /// An earlier sequence number has not executed yet and the request may not skip it.
    /// Retry once the earlier one has an outcome.
    #[error("an earlier command of the session has not executed yet")]
    Early,
}

/// The state machine's answer to one applied [`ClientOp`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A session was opened with this id.
    SessionOpened {
        /// The new session's id.
        client: ClientId,
    },
    /// The command ran (or had run: a retry's kept reply); this is its reply, Redis errors
    /// included.
    Executed(Frame),
    /// The session layer refused the request; see [`SessionError`].
    Rejected(SessionError),
    /// A [`ClientOp::Resume`] succeeded.
    Resumed {
        /// The session's highest executed sequence number (0 if none).
        highest: Sequence,
    },
}

#[cfg(test)]
mod tests {
    use super::SessionToken;

    #[test]
    fn tokens_round_trip_through_hex() {
        let token = SessionToken(*b"0123456789abcdef");
        let text = token.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(SessionToken::parse(text.as_bytes()), Some(token));
        assert_eq!(SessionToken::parse(b"zz"), None);
        assert_eq!(SessionToken::parse(&[b'g'; 32]), None);
    }
}
