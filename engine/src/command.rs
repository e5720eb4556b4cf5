//! What a client connection can send: the state machine's data commands
//! ([`verity_core::Command`], one log entry each, except reads of named keys, which the core
//! serves without one) and the commands a connection answers itself (`PING`, `HELLO`, `MULTI`,
//! `WATCH`, `SESSION`, `INFO`, `CONSISTENCY`, …), each parsed from its words with Redis's
//! error texts.

use verity_core::kv::cmd::{Access, Args, Spec};
use verity_core::{ClientId, Command, CommandError, ReadConsistency, Sequence, SessionToken};

const fn spec(name: &'static str, arity: i64, group: &'static str, summary: &'static str) -> Spec {
    Spec {
        name,
        arity,
        access: Access::Read,
        keys: (0, 0, 0),
        group,
        summary,
    }
}

/// How a connection's reads of named keys (`GET`, `MGET`, `EXISTS`, `TTL`, …) are served.
/// Writes, transactions, `WATCH` and reads of the whole keyspace (`KEYS`, `SCAN`, `DBSIZE`,
/// `RANDOMKEY`) always go through the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Without a log entry, linearizable (ReadIndex): the default.
    #[default]
    #[serde(alias = "strong")]
    Linearizable,
    /// Without a log entry or a round of messages while the leader holds a lease:
    /// linearizable as long as clocks drift no more than the node allows.
    Lease,
    /// From the serving node's own state, at once: may miss recent writes.
    #[serde(alias = "eventual")]
    Stale,
    /// As a log entry, like a write: the slowest.
    Log,
}

impl Consistency {
    /// The level named `word` (any case; `strong` and `eventual` are aliases).
    #[must_use]
    pub fn parse(word: &[u8]) -> Option<Consistency> {
        match word.to_ascii_lowercase().as_slice() {
            b"linearizable" | b"strong" => Some(Consistency::Linearizable),
            b"lease" => Some(Consistency::Lease),
            b"stale" | b"eventual" => Some(Consistency::Stale),
            b"log" => Some(Consistency::Log),
            _ => None,
        }
    }

    /// The level's name, as `CONSISTENCY` shows it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Lease => "lease",
            Consistency::Stale => "stale",
            Consistency::Log => "log",
        }
    }

    /// How the core serves a read at this level; `None` when it goes through the log.
    #[must_use]
    pub fn without_log(self) -> Option<ReadConsistency> {
        match self {
            Consistency::Linearizable => Some(ReadConsistency::Linearizable),
            Consistency::Lease => Some(ReadConsistency::Lease),
            Consistency::Stale => Some(ReadConsistency::Stale),
            Consistency::Log => None,
        }
    }
}

/// The commands a connection answers itself, for `COMMAND COUNT`/`INFO`/`DOCS`.
pub const CONNECTION_SPECS: &[Spec] = &[
    spec(
        "ping",
        -1,
        "connection",
        "Returns the server's liveliness response.",
    ),
    spec("echo", 2, "connection", "Returns the given string."),
    spec("quit", -1, "connection", "Closes the connection."),
    spec(
        "hello",
        -1,
        "connection",
        "Handshakes with the Redis server (RESP2 only), optionally authenticating.",
    ),
    spec(
        "auth",
        -2,
        "connection",
        "Authenticates the connection as a user (the default one if only a password is given).",
    ),
    spec(
        "select",
        2,
        "connection",
        "Changes the selected database (only database 0 exists).",
    ),
    spec(
        "client",
        -2,
        "connection",
        "CLIENT SETNAME, GETNAME, ID, SETINFO.",
    ),
    spec("config", -2, "server", "CONFIG GET: reads server settings."),
    spec(
        "command",
        -1,
        "server",
        "COMMAND, COMMAND COUNT, LIST, INFO, DOCS: describes the commands.",
    ),
    spec(
        "info",
        -1,
        "server",
        "Returns information and statistics about the node and its Raft state.",
    ),
    spec(
        "leader",
        1,
        "verity",
        "Returns the leader's id and client address.",
    ),
    spec(
        "consistency",
        -1,
        "verity",
        "CONSISTENCY [linearizable|lease|stale|log]: shows or sets how this connection's reads are served (aliases: strong, eventual).",
    ),
    spec(
        "failover",
        -1,
        "server",
        "FAILOVER [TO node-id]: the leader hands its leadership to that node, or to its most up-to-date live peer.",
    ),
    spec(
        "session",
        -1,
        "verity",
        "SESSION shows this connection's exactly-once session; SESSION id token [sequence] resumes one.",
    ),
    spec("multi", 1, "transactions", "Starts a transaction."),
    spec(
        "exec",
        1,
        "transactions",
        "Executes all commands in a transaction.",
    ),
    spec("discard", 1, "transactions", "Discards a transaction."),
    spec(
        "watch",
        -2,
        "transactions",
        "Monitors changes to keys to determine the execution of a transaction.",
    ),
    spec(
        "unwatch",
        1,
        "transactions",
        "Forgets about watched keys of a transaction.",
    ),
];

/// Every command the server knows: the connection's own, then the state machine's.
pub fn all_specs() -> impl Iterator<Item = &'static Spec> {
    CONNECTION_SPECS.iter().chain(
        verity_core::kv::cmd::SPECS
            .iter()
            .flat_map(|family| family.iter()),
    )
}

/// The spec of any command named `name` (lower-case).
#[must_use]
pub fn find_spec(name: &str) -> Option<&'static Spec> {
    all_specs().find(|spec| spec.name == name)
}

/// `COMMAND`'s subcommands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandQuery {
    /// `COMMAND`: every command's info.
    All,
    /// `COMMAND COUNT`
    Count,
    /// `COMMAND LIST`
    List,
    /// `COMMAND INFO name ...`
    Info(Vec<String>),
    /// `COMMAND DOCS [name ...]`
    Docs(Vec<String>),
}

/// `CLIENT`'s subcommands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientSub {
    /// `CLIENT SETNAME name`
    SetName(Vec<u8>),
    /// `CLIENT GETNAME`
    GetName,
    /// `CLIENT ID`
    Id,
    /// `CLIENT SETINFO …` (sent by client libraries; accepted and ignored)
    SetInfo,
}

/// One parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCommand {
    /// A data command: one log entry.
    Data(Command),
    /// `PING [message]`
    Ping(Option<Vec<u8>>),
    /// `ECHO message`
    Echo(Vec<u8>),
    /// `QUIT`
    Quit,
    /// `HELLO [protover [AUTH username password] [SETNAME clientname]]`
    Hello {
        /// The protocol version asked for.
        version: Option<Vec<u8>>,
        /// `AUTH username password`.
        auth: Option<(Vec<u8>, Vec<u8>)>,
        /// `SETNAME clientname`.
        name: Option<Vec<u8>>,
    },
    /// `AUTH [username] password`
    Auth {
        /// The user (`None`: the default user).
        user: Option<Vec<u8>>,
        /// The password.
        password: Vec<u8>,
    },
    /// `SELECT index`
    Select(i64),
    /// `CLIENT …`
    Client(ClientSub),
    /// `CONFIG GET pattern ...`
    ConfigGet(Vec<String>),
    /// `COMMAND …`
    Command(CommandQuery),
    /// `INFO [section]`
    Info,
    /// `LEADER`
    Leader,
    /// `FAILOVER [TO node-id]`: hand leadership to `to`, or to the best live peer.
    Failover {
        /// The node to hand over to, if named.
        to: Option<u64>,
    },
    /// `CONSISTENCY [level]`: show the connection's read consistency, or set it.
    Consistency(Option<Consistency>),
    /// `SESSION`: show this connection's session.
    SessionShow,
    /// `SESSION id token [sequence]`: continue session `id` on this connection. Its data
    /// commands are numbered from `retry` if given, one by one (so a client sends its
    /// unanswered commands again, in their order, and each runs at most once), otherwise from
    /// the session's next fresh number.
    SessionResume {
        /// The session.
        client: ClientId,
        /// Its secret.
        token: SessionToken,
        /// The number to retry, if any.
        retry: Option<Sequence>,
    },
    /// `MULTI`
    Multi,
    /// `EXEC`
    Exec,
    /// `DISCARD`
    Discard,
    /// `WATCH key [key ...]`
    Watch(Vec<Vec<u8>>),
    /// `UNWATCH`
    Unwatch,
}

fn unsigned(bytes: &[u8]) -> Result<u64, CommandError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(CommandError::NotInteger)
}

fn names(args: &mut Args) -> Vec<String> {
    args.drain()
        .iter()
        .map(|n| String::from_utf8_lossy(n).to_ascii_lowercase())
        .collect()
}

impl ClientCommand {
    /// Parses a command from its words (name first, non-empty).
    pub fn parse(words: Vec<Vec<u8>>) -> Result<ClientCommand, CommandError> {
        let name = String::from_utf8_lossy(&words[0]).to_ascii_lowercase();
        let Some(spec) = CONNECTION_SPECS.iter().find(|s| s.name == name) else {
            return Command::parse(words).map(ClientCommand::Data);
        };
        if !spec.arity_ok(words.len()) {
            return Err(CommandError::WrongArity(name));
        }
        let mut args = Args::new(words);
        let command = match name.as_str() {
            "ping" if args.remaining() <= 1 => ClientCommand::Ping(args.drain().pop()),
            "ping" => return Err(CommandError::WrongArity(name)),
            "echo" => ClientCommand::Echo(args.word()?),
            "quit" => {
                args.drain();
                ClientCommand::Quit
            }
            "hello" => {
                let version = (args.remaining() > 0).then(|| args.word()).transpose()?;
                let (mut auth, mut name) = (None, None);
                while args.remaining() > 0 {
                    match args.next_keyword()?.as_str() {
                        "auth" if args.remaining() >= 2 => {
                            auth = Some((args.word()?, args.word()?));
                        }
                        "setname" if args.remaining() >= 1 => name = Some(args.word()?),
                        option => {
                            return Err(CommandError::Incompatible(format!(
                                "Syntax error in HELLO option '{option}'"
                            )));
                        }
                    }
                }
                ClientCommand::Hello {
                    version,
                    auth,
                    name,
                }
            }
            "auth" => match args.remaining() {
                1 => ClientCommand::Auth {
                    user: None,
                    password: args.word()?,
                },
                2 => ClientCommand::Auth {
                    user: Some(args.word()?),
                    password: args.word()?,
                },
                _ => return Err(CommandError::Syntax),
            },
            "select" => ClientCommand::Select(args.next_integer()?),
            "client" => ClientCommand::Client(match args.next_keyword()?.as_str() {
                "setname" => ClientSub::SetName(args.word()?),
                "getname" => ClientSub::GetName,
                "id" => ClientSub::Id,
                "setinfo" => {
                    args.drain();
                    ClientSub::SetInfo
                }
                other => {
                    return Err(CommandError::Incompatible(format!(
                        "unknown subcommand '{other}'. Try CLIENT SETNAME, GETNAME, ID or SETINFO."
                    )));
                }
            }),
            "config" => match args.next_keyword()?.as_str() {
                "get" if args.remaining() > 0 => ClientCommand::ConfigGet(names(&mut args)),
                "get" => return Err(CommandError::WrongArity("config|get".into())),
                other => {
                    return Err(CommandError::Incompatible(format!(
                        "unknown subcommand '{other}'. Verity supports only CONFIG GET."
                    )));
                }
            },
            "command" => ClientCommand::Command(match args.remaining() {
                0 => CommandQuery::All,
                _ => match args.next_keyword()?.as_str() {
                    "count" => CommandQuery::Count,
                    "list" => CommandQuery::List,
                    "info" => CommandQuery::Info(names(&mut args)),
                    "docs" => CommandQuery::Docs(names(&mut args)),
                    other => {
                        return Err(CommandError::Incompatible(format!(
                            "unknown subcommand '{other}'. Try COMMAND COUNT, LIST, INFO or DOCS."
                        )));
                    }
                },
            }),
            "info" => {
                args.drain();
                ClientCommand::Info
            }
            "leader" => ClientCommand::Leader,
            "failover" => match args.remaining() {
                0 => ClientCommand::Failover { to: None },
                2 if args.next_keyword()? == "to" => ClientCommand::Failover {
                    to: Some(unsigned(&args.word()?)?),
                },
                _ => {
                    return Err(CommandError::Incompatible(
                        "syntax error: FAILOVER [TO node-id] (Verity names the node by its id)"
                            .into(),
                    ));
                }
            },
            "consistency" => match args.remaining() {
                0 => ClientCommand::Consistency(None),
                1 => {
                    let word = args.word()?;
                    let level = Consistency::parse(&word).ok_or_else(|| {
                        CommandError::Incompatible(format!(
                            "unknown consistency '{}': use linearizable (or strong), lease, stale (or eventual), or log",
                            String::from_utf8_lossy(&word)
                        ))
                    })?;
                    ClientCommand::Consistency(Some(level))
                }
                _ => return Err(CommandError::WrongArity("consistency".into())),
            },
            "session" => match args.remaining() {
                0 => ClientCommand::SessionShow,
                2 | 3 => {
                    let client = ClientId(unsigned(&args.word()?)?);
                    let token = SessionToken::parse(&args.word()?).ok_or_else(|| {
                        CommandError::Incompatible(
                            "invalid session token: expected the 32 hex digits SESSION shows"
                                .into(),
                        )
                    })?;
                    let retry = match args.remaining() {
                        0 => None,
                        _ => Some(Sequence(unsigned(&args.word()?)?).max(Sequence(1))),
                    };
                    ClientCommand::SessionResume {
                        client,
                        token,
                        retry,
                    }
                }
                _ => return Err(CommandError::WrongArity(name)),
            },
            "multi" => ClientCommand::Multi,
            "exec" => ClientCommand::Exec,
            "discard" => ClientCommand::Discard,
            "watch" => ClientCommand::Watch(args.drain()),
            "unwatch" => ClientCommand::Unwatch,
            other => unreachable!("every connection spec has a parser: {other}"),
        };
        args.finish()?;
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<ClientCommand, CommandError> {
        ClientCommand::parse(line.split(' ').map(|w| w.as_bytes().to_vec()).collect())
    }

    #[test]
    fn connection_commands_parse_and_data_commands_pass_through() {
        assert_eq!(parse("PING").unwrap(), ClientCommand::Ping(None));
        assert_eq!(parse("multi").unwrap(), ClientCommand::Multi);
        assert_eq!(
            parse("WATCH a b").unwrap(),
            ClientCommand::Watch(vec![b"a".to_vec(), b"b".to_vec()])
        );
        assert_eq!(
            parse("COMMAND COUNT").unwrap(),
            ClientCommand::Command(CommandQuery::Count)
        );
        assert!(matches!(parse("INCR k").unwrap(), ClientCommand::Data(_)));
        let token = "00112233445566778899aabbccddeeff";
        assert_eq!(
            parse(&format!("SESSION 7 {token} 3")).unwrap(),
            ClientCommand::SessionResume {
                client: ClientId(7),
                token: SessionToken::parse(token.as_bytes()).unwrap(),
                retry: Some(Sequence(3)),
            }
        );
    }

    #[test]
    fn errors_read_like_redis() {
        assert_eq!(
            parse("ECHO").unwrap_err().to_string(),
            "ERR wrong number of arguments for 'echo' command"
        );
        assert_eq!(
            parse("PING a b").unwrap_err().to_string(),
            "ERR wrong number of arguments for 'ping' command"
        );
        assert!(
            parse("SESSION 1 nothex")
                .unwrap_err()
                .to_string()
                .contains("invalid session token")
        );
        assert!(
            parse("NOPE")
                .unwrap_err()
                .to_string()
                .starts_with("ERR unknown command 'NOPE'")
        );
        assert!(
            parse("CONFIG SET a b")
                .unwrap_err()
                .to_string()
                .contains("only CONFIG GET")
        );
    }

    #[test]
    fn spec_names_are_unique_across_connection_and_data_commands() {
        let mut names: Vec<&str> = all_specs().map(|s| s.name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
