//! Client commands: their names, arguments and argument errors.
//!
//! [`ClientCommand::parse`] turns the words of one RESP command into a typed command, with the
//! error text Redis clients expect (`ERR wrong number of arguments for 'get' command`, …).
//! Executing them is [`crate::server`]'s job.

/// How `SET` is conditioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCondition {
    /// Always write.
    Always,
    /// `NX`: only if the key is absent.
    IfAbsent,
    /// `XX`: only if the key exists.
    IfPresent,
}

/// One parsed client command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCommand {
    /// `PING [message]`
    Ping(Option<Vec<u8>>),
    /// `ECHO message`
    Echo(Vec<u8>),
    /// `GET key`
    Get(Vec<u8>),
    /// `SET key value [NX|XX]`
    Set {
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
        /// Condition.
        condition: SetCondition,
    },
    /// `DEL key [key ...]`
    Del(Vec<Vec<u8>>),
    /// `EXISTS key [key ...]`
    Exists(Vec<Vec<u8>>),
    /// `INCR`, `DECR`, `INCRBY`, `DECRBY`
    IncrBy {
        /// Key.
        key: Vec<u8>,
        /// Amount to add.
        delta: i64,
    },
    /// `APPEND key value`
    Append {
        /// Key.
        key: Vec<u8>,
        /// Suffix.
        value: Vec<u8>,
    },
    /// `MGET key [key ...]`
    MGet(Vec<Vec<u8>>),
    /// `CAS key expected new`: set `new` if the value is exactly `expected`.
    Cas {
        /// Key.
        key: Vec<u8>,
        /// Required current value.
        expected: Vec<u8>,
        /// New value.
        new: Vec<u8>,
    },
    /// `GETVER key`: value and version.
    GetVer(Vec<u8>),
    /// `INFO [section]`
    Info,
    /// `LEADER`
    Leader,
    /// `CONSISTENCY`
    Consistency,
    /// `QUIT`
    Quit,
    /// `HELLO [protover ...]`
    Hello(Option<Vec<u8>>),
    /// `CONFIG GET parameter [parameter ...]`
    ConfigGet(Vec<String>),
    /// `COMMAND [subcommand ...]`
    Command(Option<String>),
    /// `CLIENT SETNAME name`
    ClientSetName(Vec<u8>),
    /// `CLIENT GETNAME`
    ClientGetName,
    /// `CLIENT ID`
    ClientId,
    /// `CLIENT SETINFO ...` (sent by client libraries; accepted and ignored)
    ClientSetInfo,
    /// `SELECT index` (only database 0 exists)
    Select(i64),
    /// `SESSION` (show this connection's session) or `SESSION id next-sequence` (resume one).
    Session(Option<(u64, u64)>),
}

/// A command that cannot be run, as the text of an `-ERR` reply (the code included).
pub type ArgError = String;

fn lower(name: &[u8]) -> String {
    String::from_utf8_lossy(name).to_ascii_lowercase()
}

fn integer(arg: &[u8]) -> Result<i64, ArgError> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| "ERR value is not an integer or out of range".to_string())
}

fn unsigned(arg: &[u8]) -> Result<u64, ArgError> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| "ERR value is not an unsigned integer".to_string())
}

impl ClientCommand {
    /// Parses a command from its words (name first, non-empty).
    pub fn parse(mut args: Vec<Vec<u8>>) -> Result<ClientCommand, ArgError> {
        debug_assert!(!args.is_empty());
        let name = lower(&args[0]);
        let shown: String = String::from_utf8_lossy(&args[0]).chars().take(64).collect();
        let arity = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "ERR wrong number of arguments for '{name}' command"
                ))
            }
        };
        let n = args.len();
        let mut rest = args.drain(1..);
        let mut next = move || rest.next().expect("arity checked");
        let command = match name.as_str() {
            "ping" => {
                arity(n <= 2)?;
                ClientCommand::Ping((n == 2).then(&mut next))
            }
            "echo" => {
                arity(n == 2)?;
                ClientCommand::Echo(next())
            }
            "get" => {
                arity(n == 2)?;
                ClientCommand::Get(next())
            }
            "getver" => {
                arity(n == 2)?;
                ClientCommand::GetVer(next())
            }
            "set" => {
                arity(n == 3 || n == 4)?;
                let (key, value) = (next(), next());
                let condition = if n == 4 {
                    match lower(&next()).as_str() {
                        "nx" => SetCondition::IfAbsent,
                        "xx" => SetCondition::IfPresent,
                        _ => return Err("ERR syntax error (SET supports only NX or XX)".into()),
                    }
                } else {
                    SetCondition::Always
                };
                ClientCommand::Set {
                    key,
                    value,
                    condition,
                }
            }
            "del" | "exists" | "mget" => {
                arity(n >= 2)?;
                let keys = (1..n).map(|_| next()).collect();
                match name.as_str() {
                    "del" => ClientCommand::Del(keys),
                    "exists" => ClientCommand::Exists(keys),
                    _ => ClientCommand::MGet(keys),
                }
            }
            "incr" | "decr" => {
                arity(n == 2)?;
                let delta = if name == "incr" { 1 } else { -1 };
                ClientCommand::IncrBy { key: next(), delta }
            }
            "incrby" | "decrby" => {
                arity(n == 3)?;
                let key = next();
                let amount = integer(&next())?;
                let delta = if name == "incrby" {
                    amount
                } else {
                    amount.checked_neg().ok_or("ERR decrement would overflow")?
                };
                ClientCommand::IncrBy { key, delta }
            }
            "append" => {
                arity(n == 3)?;
                ClientCommand::Append {
                    key: next(),
                    value: next(),
                }
            }
            "cas" => {
                arity(n == 4)?;
                ClientCommand::Cas {
                    key: next(),
                    expected: next(),
                    new: next(),
                }
            }
            "info" => ClientCommand::Info,
            "leader" => {
                arity(n == 1)?;
                ClientCommand::Leader
            }
            "consistency" => {
                arity(n == 1)?;
                ClientCommand::Consistency
            }
            "quit" => ClientCommand::Quit,
            "hello" => ClientCommand::Hello((n >= 2).then(&mut next)),
            "config" => {
                arity(n >= 3)?;
                let sub = lower(&next());
                if sub != "get" {
                    return Err(format!(
                        "ERR CONFIG {} is not supported (only CONFIG GET)",
                        sub.to_uppercase()
                    ));
                }
                ClientCommand::ConfigGet((2..n).map(|_| lower(&next())).collect())
            }
            "command" => ClientCommand::Command((n >= 2).then(|| lower(&next()))),
            "client" => {
                arity(n >= 2)?;
                match lower(&next()).as_str() {
                    "setname" => {
                        arity(n == 3)?;
                        ClientCommand::ClientSetName(next())
                    }
                    "getname" => ClientCommand::ClientGetName,
                    "id" => ClientCommand::ClientId,
                    "setinfo" => ClientCommand::ClientSetInfo,
                    other => {
                        return Err(format!(
                            "ERR CLIENT {} is not supported (SETNAME, GETNAME, ID, SETINFO are)",
                            other.to_uppercase()
                        ));
                    }
                }
            }
            "select" => {
                arity(n == 2)?;
                ClientCommand::Select(integer(&next())?)
            }
            "session" => {
                arity(n == 1 || n == 3)?;
                if n == 3 {
                    let id = unsigned(&next())?;
                    let sequence = unsigned(&next())?;
                    ClientCommand::Session(Some((id, sequence)))
                } else {
                    ClientCommand::Session(None)
                }
            }
            _ => {
                return Err(format!("ERR unknown command '{shown}'"));
            }
        };
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<ClientCommand, ArgError> {
        ClientCommand::parse(line.split(' ').map(|w| w.as_bytes().to_vec()).collect())
    }

    #[test]
    fn commands_parse_case_insensitively() {
        assert_eq!(
            parse("sEt k v NX").unwrap(),
            ClientCommand::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                condition: SetCondition::IfAbsent
            }
        );
        assert_eq!(
            parse("DECRBY k 5").unwrap(),
            ClientCommand::IncrBy {
                key: b"k".to_vec(),
                delta: -5
            }
        );
        assert_eq!(
            parse("DEL a b").unwrap(),
            ClientCommand::Del(vec![b"a".to_vec(), b"b".to_vec()])
        );
        assert_eq!(
            parse("SESSION 7 3").unwrap(),
            ClientCommand::Session(Some((7, 3)))
        );
    }

    #[test]
    fn errors_read_like_redis() {
        assert_eq!(
            parse("GET").unwrap_err(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            parse("INCRBY k x").unwrap_err(),
            "ERR value is not an integer or out of range"
        );
        assert!(
            parse("SET k v EX")
                .unwrap_err()
                .starts_with("ERR syntax error")
        );
        assert!(
            parse("FLUSHALL")
                .unwrap_err()
                .starts_with("ERR unknown command 'FLUSHALL'")
        );
        assert!(
            parse(&format!("DECRBY k {}", i64::MIN))
                .unwrap_err()
                .contains("overflow")
        );
    }
}
