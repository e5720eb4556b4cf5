//! The commands the replicated state machine executes, laid out as mini-redis lays out its
//! `cmd/`: one module per command family, each parsing its own arguments, applying itself to
//! the [`Store`] and stating its reply.
//!
//! Every command here is **one log entry**: `INCR`, `APPEND`, `SET … XX`, `MSET` and a whole
//! `MULTI`/`EXEC` transaction are each decided atomically by [`Command::apply`] on every replica
//! at the same point of the log, so none of them can fail under contention. Replies and error
//! texts are Redis 7's. Connection-level commands (`PING`, `HELLO`, `MULTI`, `WATCH`, …) never
//! reach the log; they belong to the server layer.
//!
//! [`Command::parse`] reads a command from its words; [`SPECS`] describes every command for
//! `COMMAND COUNT`/`INFO`/`DOCS`; [`CommandError`] is the one typed error, rendered as the
//! `-ERR …` line Redis would send.

mod counters;
mod expiry;
pub mod glob;
mod keys;
mod strings;
mod transaction;
mod verity;

pub use counters::CounterCommand;
pub use expiry::{ExpireCondition, ExpiryCommand, TimeUnit};
pub use keys::KeyCommand;
pub use keys::MAX_SCAN_COUNT;
pub use strings::{SetCondition, SetExpiry, SetReply, StringCommand};
pub use transaction::Transaction;
pub use verity::{Expect, VerityCommand};

use super::frame::Frame;
use super::store::Store;
use crate::types::LogIndex;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// One command of the state machine. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `GET`, `SET`, `APPEND`, `MSET`, …
    Strings(StringCommand),
    /// `INCR`, `DECRBY`, `INCRBYFLOAT`, …
    Counter(CounterCommand),
    /// `DEL`, `EXISTS`, `KEYS`, `SCAN`, `FLUSHALL`, …
    Keys(KeyCommand),
    /// `EXPIRE`, `TTL`, `PERSIST`, …
    Expiry(ExpiryCommand),
    /// Verity's own: `CAS`, `GETVER`, and the version read behind `WATCH`.
    Verity(VerityCommand),
    /// A `MULTI`/`EXEC` transaction: all of it or (if a watched key changed) none of it.
    Exec(Transaction),
}

/// A command that cannot run: its Redis error reply. `Display` is the reply's text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CommandError {
    /// No data command has this name.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    Unknown {
        /// The name as sent (shortened).
        name: String,
        /// The first arguments, quoted as Redis quotes them.
        args: String,
    },
    /// Too few or too many arguments.
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    /// An argument or stored value is not a 64-bit integer.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// An argument or stored value is not a float.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// Options that do not fit the command's grammar.
    #[error("ERR syntax error")]
    Syntax,
    /// An increment would leave the 64-bit range.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// `DECRBY key -9223372036854775808`.
    #[error("ERR decrement would overflow")]
    DecrementOverflow,
    /// A float increment would give NaN or an infinity.
    #[error("ERR increment would produce NaN or Infinity")]
    NotFinite,
    /// A non-positive or overflowing expiry.
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(String),
    /// A negative offset.
    #[error("ERR offset is out of range")]
    OffsetOutOfRange,
    /// A value would exceed the configured maximum.
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    TooLarge,
    /// A `SCAN` cursor that is not a number.
    #[error("ERR invalid cursor")]
    InvalidCursor,
    /// Options that exclude each other.
    #[error("ERR {0}")]
    Incompatible(String),
    /// The reply would be larger than the limit.
    #[error(
        "ERR the reply would carry {bytes} bytes, over the limit of {limit} (64 values of the largest size): ask for fewer keys at a time, or use SCAN with a smaller COUNT"
    )]
    ReplyTooLarge {
        /// Bytes of keys and values the reply would carry.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// A transaction's replies so far carry more than the reply limit: this command ran, but
    /// its reply is dropped.
    #[error(
        "ERR the transaction's replies carry more than {limit} bytes (64 values of the largest size): this command ran, its reply was dropped; read in smaller transactions"
    )]
    TransactionReplyTooLarge {
        /// The limit.
        limit: u64,
    },
}

impl From<CommandError> for Frame {
    fn from(error: CommandError) -> Frame {
        Frame::error(error.to_string())
    }
}

/// What a command may do, for `COMMAND INFO` and for the session layer (whose reply caches
/// keep only the replies of writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Only reads: re-executing it has no effect.
    Read,
    /// May change the store.
    Write,
}

/// The description of one command, as `COMMAND INFO` and `COMMAND DOCS` report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis's arity: the number of words with the name, or `-n` for "at least n".
    pub arity: i64,
    /// Read or write.
    pub access: Access,
    /// Position of the first key (0: none), the last (-1: the last word) and the step.
    pub keys: (i64, i64, i64),
    /// Redis's command group (`string`, `generic`, `transactions`, …).
    pub group: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
}

impl Spec {
    /// Whether `words` (the name included) satisfy the arity.
    #[must_use]
    pub fn arity_ok(&self, words: usize) -> bool {
        let words = words as i64;
        if self.arity >= 0 {
            words == self.arity
        } else {
            words >= -self.arity
        }
    }
}

/// Every data command, each family's table in turn.
pub const SPECS: [&[Spec]; 5] = [
    strings::SPECS,
    counters::SPECS,
    keys::SPECS,
    expiry::SPECS,
    verity::SPECS,
];

/// The spec of data command `name` (lower-case), if there is one.
#[must_use]
pub fn spec(name: &str) -> Option<&'static Spec> {
    SPECS
        .iter()
        .flat_map(|family| family.iter())
        .find(|s| s.name == name)
}

/// What applying a command may use besides the store.
pub struct Context<'a> {
    /// The store, already advanced to the entry's time.
    pub store: &'a mut Store,
    /// The entry's index: the version of every key it writes.
    pub index: LogIndex,
    /// Largest value a write may produce.
    pub max_value_bytes: u64,
}

/// How many of the largest values one reply may carry: a reply (`MGET`, `KEYS`, `SCAN`) that
/// would be larger than this many times `max_value_bytes` is refused before it is built, on
/// every replica alike.
pub const MAX_REPLY_VALUES: u64 = 64;

/// Refuses a reply of `bytes` (keys and values it would carry) over the reply limit of a
/// store whose values are at most `max_value_bytes`.
fn reply_fits(bytes: u64, max_value_bytes: u64) -> Result<(), CommandError> {
    let limit = max_value_bytes.saturating_mul(MAX_REPLY_VALUES);
    if bytes > limit {
        Err(CommandError::ReplyTooLarge { bytes, limit })
    } else {
        Ok(())
    }
}

/// Shorthands for the commands a workload generator or a test builds most.
impl Command {
    /// `GET key`
    #[must_use]
    pub fn get(key: impl Into<Vec<u8>>) -> Command {
        Command::Strings(StringCommand::Get { key: key.into() })
    }

    /// `SET key value`
    #[must_use]
    pub fn set(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Command {
        Command::Strings(StringCommand::Set {
            key: key.into(),
            value: value.into(),
            condition: SetCondition::Always,
            expiry: SetExpiry::Persist,
            reply: SetReply::Status,
        })
    }

    /// `DEL key`
    #[must_use]
    pub fn del(key: impl Into<Vec<u8>>) -> Command {
        Command::Keys(KeyCommand::Del {
            keys: vec![key.into()],
        })
    }

    /// `APPEND key value`
    #[must_use]
    pub fn append(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Command {
        Command::Strings(StringCommand::Append {
            key: key.into(),
            value: value.into(),
        })
    }

    /// Compare-and-swap: if the key matches `expect`, set `new` (`None` deletes).
    #[must_use]
    pub fn cas(key: impl Into<Vec<u8>>, expect: Expect, new: Option<Vec<u8>>) -> Command {
        Command::Verity(VerityCommand::Cas {
            key: key.into(),
            expect,
            new,
        })
    }

    /// `INCRBY key delta`
    #[must_use]
    pub fn incr_by(key: impl Into<Vec<u8>>, delta: i64) -> Command {
        Command::Counter(CounterCommand::IncrBy {
            key: key.into(),
            delta,
        })
    }
}

impl Command {
    /// Parses a data command from its words (name first). Names are case-insensitive.
    /// [`CommandError::Unknown`] means no data command has the name (the caller may know it
    /// as a connection command).
    pub fn parse(words: Vec<Vec<u8>>) -> Result<Command, CommandError> {
        let mut args = Args::new(words);
        let name = args.name.clone();
        let Some(spec) = spec(&name) else {
            return Err(args.unknown());
        };
        if !spec.arity_ok(args.words()) {
            return Err(CommandError::WrongArity(name));
        }
        let parsed = strings::parse(&name, &mut args)
            .or_else(|| counters::parse(&name, &mut args))
            .or_else(|| keys::parse(&name, &mut args))
            .or_else(|| expiry::parse(&name, &mut args))
            .or_else(|| verity::parse(&name, &mut args))
            .unwrap_or_else(|| unreachable!("every spec has a parser: {name}"))?;
        args.finish()?;
        Ok(parsed)
    }

    /// Executes the command at `context.index` and returns its reply. Errors are replies
    /// too (`-ERR value is not an integer …`): a failed command changes nothing.
    pub fn apply(&self, context: &mut Context<'_>) -> Frame {
        match self {
            Command::Strings(command) => command.apply(context),
            Command::Counter(command) => command.apply(context),
            Command::Keys(command) => command.apply(context),
            Command::Expiry(command) => command.apply(context),
            Command::Verity(command) => command.apply(context),
            Command::Exec(transaction) => transaction.apply(context),
        }
    }

    /// Whether the command only reads (its reply is not kept for retries: re-executing it
    /// is harmless).
    #[must_use]
    pub fn access(&self) -> Access {
        let write = match self {
            Command::Strings(command) => command.is_write(),
            Command::Counter(_) => true,
            Command::Keys(command) => command.is_write(),
            Command::Expiry(command) => command.is_write(),
            Command::Verity(command) => command.is_write(),
            Command::Exec(transaction) => transaction
                .commands
                .iter()
                .any(|c| c.access() == Access::Write),
        };
        if write { Access::Write } else { Access::Read }
    }

    /// The keys a read of named keys touches (`GET`, `MGET`, `EXISTS`, `TTL`, `GETVER`, …):
    /// such a read can be served from a replica's state without a log entry (see
    /// [`crate::kv::StateMachine::read`]). `None` for writes, transactions and reads of the
    /// whole keyspace (`KEYS`, `SCAN`, `DBSIZE`, `RANDOMKEY`), which go through the log.
    #[must_use]
    pub fn read_keys(&self) -> Option<Vec<&[u8]>> {
        match self {
            Command::Strings(command) => command.read_keys(),
            Command::Counter(_) | Command::Exec(_) => None,
            Command::Keys(command) => command.read_keys(),
            Command::Expiry(command) => command.read_keys(),
            Command::Verity(command) => command.read_keys(),
        }
    }

    /// Bytes of keys and values the command carries (the batching measure of the log).
    #[must_use]
    pub fn payload_bytes(&self) -> u64 {
        match self {
            Command::Strings(command) => command.payload_bytes(),
            Command::Counter(command) => command.payload_bytes(),
            Command::Keys(command) => command.payload_bytes(),
            Command::Expiry(command) => command.payload_bytes(),
            Command::Verity(command) => command.payload_bytes(),
            Command::Exec(transaction) => transaction.payload_bytes(),
        }
    }

    /// A stable 64-bit digest of the command (two CRC-32s of its encoding). A retry must carry
    /// the same command as the attempt it repeats; the session layer compares digests.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        /// Feeds the encoding to both checksums as it is written, without a buffer.
        struct Digest(crc32fast::Hasher, crc32fast::Hasher);
        impl std::io::Write for Digest {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.update(bytes);
                self.1.update(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut digest = Digest(
            crc32fast::Hasher::new(),
            crc32fast::Hasher::new_with_initial(0x5EED_F00D),
        );
        bincode::serialize_into(&mut digest, self).expect("commands serialize");
        (u64::from(digest.1.finalize()) << 32) | u64::from(digest.0.finalize())
    }
}

/// The words of one command, read front to back by the family parsers.
#[derive(Debug)]
pub struct Args {
    /// The command name, lower-case.
    name: String,
    original_name: Vec<u8>,
    rest: VecDeque<Vec<u8>>,
}

impl Args {
    /// Splits `words` into the name and its arguments. `words` must not be empty.
    #[must_use]
    pub fn new(mut words: Vec<Vec<u8>>) -> Args {
        assert!(!words.is_empty(), "a command has a name");
        let original_name = words.remove(0);
        Args {
            name: String::from_utf8_lossy(&original_name).to_ascii_lowercase(),
            original_name,
            rest: words.into(),
        }
    }

    /// The lower-case name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Words left, the name included if nothing was read yet (the arity's count).
    #[must_use]
    pub fn words(&self) -> usize {
        self.rest.len() + 1
    }

    /// Arguments not yet read.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next argument.
    pub fn word(&mut self) -> Result<Vec<u8>, CommandError> {
        self.rest
            .pop_front()
            .ok_or_else(|| CommandError::WrongArity(self.name.clone()))
    }

    /// The next argument as a signed 64-bit integer, in Redis's strict decimal syntax.
    pub fn next_integer(&mut self) -> Result<i64, CommandError> {
        parse_integer(&self.word()?).ok_or(CommandError::NotInteger)
    }

    /// The next argument, lower-cased, as an option keyword.
    pub fn next_keyword(&mut self) -> Result<String, CommandError> {
        Ok(String::from_utf8_lossy(&self.word()?).to_ascii_lowercase())
    }

    /// Every remaining argument.
    pub fn drain(&mut self) -> Vec<Vec<u8>> {
        self.rest.drain(..).collect()
    }

    /// Fails with a syntax error if arguments are left over.
    pub fn finish(&self) -> Result<(), CommandError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CommandError::Syntax)
        }
    }

    /// The error for a name no data command has, in Redis's words.
    #[must_use]
    pub fn unknown(&self) -> CommandError {
        let shown = |bytes: &[u8]| -> String {
            String::from_utf8_lossy(bytes)
                .chars()
                .filter(|c| !c.is_control())
                .take(128)
                .collect()
        };
        CommandError::Unknown {
            name: shown(&self.original_name),
            args: self
                .rest
                .iter()
                .take(8)
                .map(|arg| format!("'{}' ", shown(arg)))
                .collect(),
        }
    }
}

/// Redis's strict integer syntax: optional `-`, digits, no leading zeros or `+`, 64-bit.
#[must_use]
pub fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if !canonical {
        return None;
    }
    text.parse().ok()
}

/// Redis's float syntax for `INCRBYFLOAT`: a decimal or exponent number, no spaces.
#[must_use]
pub fn parse_float(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() || text.trim() != text {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    (!value.is_nan()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Vec<u8>> {
        line.split(' ').map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn integers_follow_redis_strictness() {
        assert_eq!(parse_integer(b"42"), Some(42));
        assert_eq!(parse_integer(b"-7"), Some(-7));
        assert_eq!(parse_integer(b"0"), Some(0));
        for bad in [
            "",
            "+1",
            "01",
            "-0",
            " 1",
            "1 ",
            "1.0",
            "99999999999999999999",
            "-",
        ] {
            assert_eq!(parse_integer(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn unknown_and_arity_errors_read_like_redis() {
        assert_eq!(
            Command::parse(words("FOO a b")).unwrap_err().to_string(),
            "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            Command::parse(words("get")).unwrap_err().to_string(),
            "ERR wrong number of arguments for 'get' command"
        );
    }

    #[test]
    fn every_spec_parses_and_names_are_unique() {
        let mut names: Vec<&str> = SPECS
            .iter()
            .flat_map(|f| f.iter())
            .map(|s| s.name)
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "duplicate command names");
        for name in names {
            let spec = spec(name).unwrap();
            let min = spec.arity.unsigned_abs() as usize;
            let mut line = vec![name.as_bytes().to_vec()];
            line.extend((1..min).map(|_| b"1".to_vec()));
            let result = Command::parse(line);
            assert!(
                !matches!(
                    result,
                    Err(CommandError::Unknown { .. } | CommandError::WrongArity(_))
                ),
                "{name}: {result:?}"
            );
        }
    }

    #[test]
    fn fingerprints_tell_commands_apart() {
        let a = Command::parse(words("SET k 1")).unwrap();
        let b = Command::parse(words("SET k 2")).unwrap();
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
