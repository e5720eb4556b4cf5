//! Who may use a connection, as Redis decides it: `requirepass` (the `default` user's
//! password), users with passwords (a subset of Redis ACL files), and protected mode.
//!
//! With no password set, every client is the `default` user and needs no `AUTH`; protected
//! mode (on by default) then serves loopback clients only. With any password set, a client
//! must authenticate (`AUTH [user] password`, or `HELLO 2 AUTH user password`) before any
//! command but `AUTH`, `HELLO` and `QUIT`. Every user has full access: per-command rules are
//! not supported, and an ACL line asking for them is refused rather than ignored. Passwords
//! are kept only as SHA-256 digests and compared in constant time.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The user `AUTH password` authenticates as.
pub const DEFAULT_USER: &str = "default";

/// `-NOAUTH`: a command before authentication.
pub const NOAUTH: &str = "NOAUTH Authentication required.";

/// `-WRONGPASS`: an unknown user or a wrong password (Redis does not say which).
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// `-DENIED`: protected mode, a client not on the loopback interface.
pub const DENIED: &str = "DENIED Verity is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. To accept other clients, set a password (--requirepass or --acl-file) or, on a trusted network only, start the node with --protected-mode no";

/// A line of an ACL file that Verity cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ACL file line {line}: {reason}")]
pub struct AclError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The users and the protected-mode setting of a node. Cheap to share (`Arc`) among
/// connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Users {
    passwords: BTreeMap<String, [u8; 32]>,
    protected_mode: bool,
}

impl Users {
    /// No passwords and no protected mode: every client may do anything (the simulator, and
    /// tests that are not about authentication).
    #[must_use]
    pub fn open() -> Users {
        Users::default()
    }

    /// `requirepass` (if any) as the `default` user's password, the users of `acl` (an ACL
    /// file's text), and protected mode. A user named in both takes the ACL file's password.
    pub fn new(
        requirepass: Option<&[u8]>,
        acl: Option<&str>,
        protected_mode: bool,
    ) -> Result<Users, AclError> {
        let mut passwords = BTreeMap::new();
        if let Some(password) = requirepass {
            passwords.insert(DEFAULT_USER.to_string(), digest(password));
        }
        for (index, line) in acl.unwrap_or("").lines().enumerate() {
            if let Some((user, password)) = parse_acl_line(line).map_err(|reason| AclError {
                line: index + 1,
                reason,
            })? {
                passwords.insert(user, digest(password.as_bytes()));
            }
        }
        Ok(Users {
            passwords,
            protected_mode,
        })
    }

    /// Whether a client must authenticate before using the connection.
    #[must_use]
    pub fn required(&self) -> bool {
        !self.passwords.is_empty()
    }

    /// Whether a client not on the loopback interface is turned away.
    #[must_use]
    pub fn denies_remote(&self) -> bool {
        self.protected_mode && !self.required()
    }

    /// Whether `password` is `user`'s. With no passwords set, only the `default` user exists,
    /// and any password is its password (Redis's `nopass`).
    #[must_use]
    pub fn check(&self, user: &[u8], password: &[u8]) -> bool {
        if !self.required() {
            return user == DEFAULT_USER.as_bytes();
        }
        let offered = digest(password);
        std::str::from_utf8(user)
            .ok()
            .and_then(|user| self.passwords.get(user))
            .is_some_and(|known| {
                known
                    .iter()
                    .zip(offered)
                    .fold(0u8, |differs, (a, b)| differs | (a ^ b))
                    == 0
            })
    }
}

fn digest(password: &[u8]) -> [u8; 32] {
    Sha256::digest(password).into()
}

/// One line of an ACL file: `user NAME on >PASSWORD [~* &* +@all allkeys allchannels
/// allcommands]`, or a blank or `#` line (`None`).
fn parse_acl_line(line: &str) -> Result<Option<(String, String)>, String> {
    let mut words = line.split_whitespace();
    match words.next() {
        None => return Ok(None),
        Some(word) if word.starts_with('#') => return Ok(None),
        Some("user") => {}
        Some(other) => {
            return Err(format!(
                "expected `user NAME on >PASSWORD`, found {other:?}"
            ));
        }
    }
    let name = words.next().ok_or("a user line needs a name")?.to_string();
    let (mut on, mut password) = (false, None);
    for word in words {
        match word {
            "on" => on = true,
            "~*" | "&*" | "+@all" | "allkeys" | "allchannels" | "allcommands" => {}
            _ if word.starts_with('>') && password.is_none() => {
                password = Some(word[1..].to_string());
            }
            _ => {
                return Err(format!(
                    "user {name:?}: {word:?} is not supported (Verity users have one password \
                     and full access: `user NAME on >PASSWORD`)"
                ));
            }
        }
    }
    if !on {
        return Err(format!(
            "user {name:?} is not `on`: remove the line to disable a user"
        ));
    }
    let password = password.ok_or_else(|| format!("user {name:?} has no `>PASSWORD`"))?;
    Ok(Some((name, password)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirepass_and_acl_users_are_checked_and_nothing_else_passes() {
        let acl = "# operators\nuser alice on >wonderland ~* +@all\n\nuser bob on >builder\n";
        let users = Users::new(Some(b"sesame"), Some(acl), true).unwrap();
        assert!(users.required() && !users.denies_remote());
        assert!(users.check(b"default", b"sesame"));
        assert!(users.check(b"alice", b"wonderland"));
        assert!(users.check(b"bob", b"builder"));
        assert!(!users.check(b"alice", b"builder"));
        assert!(!users.check(b"carol", b"sesame"));
        assert!(!users.check(b"default", b""));
    }

    #[test]
    fn without_passwords_only_the_default_user_exists_and_protected_mode_applies() {
        let users = Users::new(None, None, true).unwrap();
        assert!(!users.required() && users.denies_remote());
        assert!(users.check(b"default", b"anything"));
        assert!(!users.check(b"alice", b"anything"));
        assert!(!Users::open().denies_remote());
    }

    #[test]
    fn acl_lines_asking_for_what_verity_cannot_do_are_refused_with_their_line() {
        for (text, expected) in [
            ("user alice on >x -@dangerous", "not supported"),
            ("user alice >x", "not `on`"),
            ("user alice on", "no `>PASSWORD`"),
            ("acl alice", "expected `user NAME on >PASSWORD`"),
        ] {
            let error = Users::new(None, Some(&format!("\n{text}")), true).unwrap_err();
            assert_eq!(error.line, 2, "{text}");
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }
}
