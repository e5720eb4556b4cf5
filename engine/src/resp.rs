//! The RESP2 wire format, client side in and server side out.
//!
//! [`CommandParser`] reads one command from the front of a buffer: either a RESP array of bulk
//! strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what client libraries send) or an inline line
//! (`GET k\r\n`, what a person types over telnet; double quotes group words). It returns
//! `Ok(None)` while the command is incomplete, so the caller reads more and tries again (and
//! the parser resumes where it stopped: linear in the bytes however slowly they come), and
//! never allocates more than the declared limits allow however the bytes lie. Replies are
//! [`verity_core::Frame`]s; [`parse_reply`] reads them back (the client side).

use verity_core::Frame;

/// Limits a parsed command must respect.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most arguments (the command name included).
    pub max_args: usize,
    /// Largest single argument, in bytes.
    pub max_arg_bytes: usize,
}

/// Longest inline command line, in bytes (as Redis).
pub const MAX_INLINE_BYTES: usize = 64 * 1024;

/// Bytes that are not a valid command. The connection cannot be resynchronised after one and
/// is closed once the error is sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Something other than what the grammar allows at this byte offset.
    #[error("Protocol error: {what} at byte {offset}")]
    Syntax {
        /// What was wrong.
        what: String,
        /// Offset from the start of the command.
        offset: usize,
    },
    /// A limit was exceeded.
    #[error("Protocol error: {0}")]
    Limit(String),
}

/// A command parsed from the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The arguments, the command name first. Never empty.
    pub args: Vec<Vec<u8>>,
    /// How many bytes of the buffer it used.
    pub consumed: usize,
}

fn syntax(what: impl Into<String>, offset: usize) -> ProtocolError {
    ProtocolError::Syntax {
        what: what.into(),
        offset,
    }
}

/// Finds the `\r\n`-terminated line starting at `from`; returns its end (index of `\r`).
fn line_end(buffer: &[u8], from: usize) -> Option<usize> {
    buffer[from..]
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .map(|position| from + position)
}

/// Parses a decimal integer line (`*N` or `$N` after the marker).
fn integer_line(
    buffer: &[u8],
    from: usize,
    limit: usize,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let Some(end) = line_end(buffer, from) else {
        if buffer.len() - from > 32 {
            return Err(syntax("length line too long", from));
        }
        return Ok(None);
    };
    let text =
        std::str::from_utf8(&buffer[from..end]).map_err(|_| syntax("invalid length", from))?;
    let value: i64 = text
        .parse()
        .map_err(|_| syntax(format!("invalid length {text:?}"), from))?;
    if value > limit as i64 {
        return Err(ProtocolError::Limit(format!(
            "length {value} exceeds the limit of {limit}"
        )));
    }
    Ok(Some((value, end + 2)))
}

/// Reads one command from the front of `buffer`. See the module docs. Stateless: a caller
/// that receives a command in pieces should keep a [`CommandParser`], which never looks at a
/// byte twice.
pub fn parse_command(buffer: &[u8], limits: Limits) -> Result<Option<Parsed>, ProtocolError> {
    CommandParser::default().parse(buffer, limits)
}

/// An incremental command parser: it remembers how far into an incomplete command it got, so
/// a command that arrives in many pieces costs time linear in its bytes, however slowly it
/// comes. Give it the same buffer again, with more bytes appended, until it returns a
/// command; then the next call starts a new command at the front of the buffer it is given.
#[derive(Clone, Debug, Default)]
pub struct CommandParser {
    partial: Option<Partial>,
}

/// How far into an incomplete command the parser got.
#[derive(Clone, Debug)]
enum Partial {
    /// An array of `count` arguments, of which `args` are read; the next starts at `at`.
    Array {
        count: usize,
        args: Vec<Vec<u8>>,
        at: usize,
    },
    /// An inline line with no newline in its first `scanned` bytes.
    Inline { scanned: usize },
}

impl CommandParser {
    /// Reads one command from the front of `buffer`, continuing where the last call on this
    /// command stopped (see [`parse_command`] for what it reads and returns). After an error
    /// the connection must close; the parser is left as new.
    pub fn parse(
        &mut self,
        buffer: &[u8],
        limits: Limits,
    ) -> Result<Option<Parsed>, ProtocolError> {
        let partial = self.partial.take();
        let result = match (buffer.first(), partial) {
            (None, _) => return Ok(None),
            (Some(b'*'), Some(Partial::Array { count, args, at })) => {
                parse_array(buffer, limits, count, args, at)
            }
            (Some(b'*'), _) => {
                let Some((count, at)) = integer_line(buffer, 1, limits.max_args)? else {
                    return Ok(None);
                };
                if count < 1 {
                    // Redis skips empty arrays; an empty command has no name to answer.
                    return Err(syntax("empty command array", 0));
                }
                let count = usize::try_from(count).expect("at most max_args");
                parse_array(buffer, limits, count, Vec::with_capacity(count), at)
            }
            (Some(_), Some(Partial::Inline { scanned })) => parse_inline(buffer, limits, scanned),
            (Some(_), _) => parse_inline(buffer, limits, 0),
        };
        match result {
            Ok(Step::Done(parsed)) => Ok(Some(parsed)),
            Ok(Step::More(partial)) => {
                self.partial = Some(partial);
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }
}

/// What one parsing step found.
enum Step {
    Done(Parsed),
    More(Partial),
}

fn parse_array(
    buffer: &[u8],
    limits: Limits,
    count: usize,
    mut args: Vec<Vec<u8>>,
    mut at: usize,
) -> Result<Step, ProtocolError> {
    while args.len() < count {
        match buffer.get(at) {
            None => return Ok(Step::More(Partial::Array { count, args, at })),
            Some(b'$') => {}
            Some(&other) => {
                return Err(syntax(format!("expected '$', got {:?}", other as char), at));
            }
        }
        let Some((length, start)) = integer_line(buffer, at + 1, limits.max_arg_bytes)? else {
            return Ok(Step::More(Partial::Array { count, args, at }));
        };
        if length < 0 {
            return Err(syntax("null bulk string in a command", at));
        }
        let end = start + length as usize;
        if buffer.len() < end + 2 {
            return Ok(Step::More(Partial::Array { count, args, at }));
        }
        if &buffer[end..end + 2] != b"\r\n" {
            return Err(syntax("bulk string not followed by CRLF", end));
        }
        args.push(buffer[start..end].to_vec());
        at = end + 2;
    }
    Ok(Step::Done(Parsed { args, consumed: at }))
}

fn parse_inline(buffer: &[u8], limits: Limits, scanned: usize) -> Result<Step, ProtocolError> {
    let Some(newline) = buffer[scanned..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|position| scanned + position)
    else {
        if buffer.len() > MAX_INLINE_BYTES {
            return Err(ProtocolError::Limit(format!(
                "inline command longer than {MAX_INLINE_BYTES} bytes"
            )));
        }
        return Ok(Step::More(Partial::Inline {
            scanned: buffer.len(),
        }));
    };
    let line = &buffer[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let args = split_inline(line, limits)?;
    Ok(Step::Done(Parsed {
        args,
        consumed: newline + 1,
    }))
}

/// Splits an inline line into words; `"double quoted"` words may hold spaces and `\"`.
fn split_inline(line: &[u8], limits: Limits) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut args = Vec::new();
    let mut at = 0;
    while at < line.len() {
        if line[at].is_ascii_whitespace() {
            at += 1;
            continue;
        }
        let mut word = Vec::new();
        if line[at] == b'"' {
            let open = at;
            at += 1;
            loop {
                match line.get(at) {
                    None => return Err(syntax("unbalanced quotes in inline command", open)),
                    Some(b'\\') if line.get(at + 1).is_some() => {
                        word.push(line[at + 1]);
                        at += 2;
                    }
                    Some(b'"') => {
                        at += 1;
                        break;
                    }
                    Some(&byte) => {
                        word.push(byte);
                        at += 1;
                    }
                }
            }
        } else {
            while at < line.len() && !line[at].is_ascii_whitespace() {
                word.push(line[at]);
                at += 1;
            }
        }
        if word.len() > limits.max_arg_bytes {
            return Err(ProtocolError::Limit(format!(
                "argument of {} bytes exceeds the limit of {}",
                word.len(),
                limits.max_arg_bytes
            )));
        }
        args.push(word);
        if args.len() > limits.max_args {
            return Err(ProtocolError::Limit(format!(
                "more than {} arguments",
                limits.max_args
            )));
        }
    }
    Ok(args)
}

/// Reads one reply (what a server sends) from the front of `buffer`: `Ok(None)` while it is
/// incomplete, else the reply and the bytes it used. Nesting and lengths are bounded by
/// `limits` as for commands; for clients and tests.
pub fn parse_reply(buffer: &[u8], limits: Limits) -> Result<Option<(Frame, usize)>, ProtocolError> {
    parse_reply_at(buffer, 0, limits, 0)
}

/// Deepest nesting of reply arrays accepted.
const MAX_REPLY_DEPTH: usize = 8;

fn parse_reply_at(
    buffer: &[u8],
    at: usize,
    limits: Limits,
    depth: usize,
) -> Result<Option<(Frame, usize)>, ProtocolError> {
    let Some(&marker) = buffer.get(at) else {
        return Ok(None);
    };
    let text_line = |from: usize| -> Result<Option<(String, usize)>, ProtocolError> {
        match line_end(buffer, from) {
            Some(end) => Ok(Some((
                String::from_utf8_lossy(&buffer[from..end]).into_owned(),
                end + 2,
            ))),
            None if buffer.len() - from > MAX_INLINE_BYTES => {
                Err(ProtocolError::Limit("reply line too long".into()))
            }
            None => Ok(None),
        }
    };
    match marker {
        b'+' | b'-' | b':' => {
            let Some((text, next)) = text_line(at + 1)? else {
                return Ok(None);
            };
            let frame = match marker {
                b'+' => Frame::Simple(text),
                b'-' => Frame::Error(text),
                _ => Frame::Integer(
                    text.parse()
                        .map_err(|_| syntax("invalid integer reply", at))?,
                ),
            };
            Ok(Some((frame, next)))
        }
        b'$' | b'*' => {
            let Some(end) = line_end(buffer, at + 1) else {
                return Ok(None);
            };
            let length: i64 = std::str::from_utf8(&buffer[at + 1..end])
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| syntax("invalid length", at))?;
            let start = end + 2;
            if length < 0 {
                return Ok(Some((
                    if marker == b'$' {
                        Frame::Null
                    } else {
                        Frame::NullArray
                    },
                    start,
                )));
            }
            if marker == b'$' {
                let length = usize::try_from(length).map_err(|_| syntax("invalid length", at))?;
                if length > limits.max_arg_bytes {
                    return Err(ProtocolError::Limit(format!(
                        "bulk reply of {length} bytes"
                    )));
                }
                if buffer.len() < start + length + 2 {
                    return Ok(None);
                }
                return Ok(Some((
                    Frame::Bulk(buffer[start..start + length].to_vec()),
                    start + length + 2,
                )));
            }
            if depth >= MAX_REPLY_DEPTH || length as usize > limits.max_args {
                return Err(ProtocolError::Limit(
                    "reply array too large or too deep".into(),
                ));
            }
            let mut items = Vec::with_capacity(length as usize);
            let mut next = start;
            for _ in 0..length {
                let Some((item, after)) = parse_reply_at(buffer, next, limits, depth + 1)? else {
                    return Ok(None);
                };
                items.push(item);
                next = after;
            }
            Ok(Some((Frame::Array(items), next)))
        }
        other => Err(syntax(
            format!("unexpected reply type {:?}", other as char),
            at,
        )),
    }
}

/// The commands (or the error that ends them) a connection's [`CommandParser`] finds in
/// `bytes` arriving `pieces` bytes at a time: what the fuzz target and the tests compare.
#[cfg(any(test, feature = "fuzzing"))]
fn parse_in_pieces(
    bytes: &[u8],
    pieces: usize,
    limits: Limits,
) -> Vec<Result<Vec<Vec<u8>>, ProtocolError>> {
    let (mut parser, mut buffer, mut commands) = (CommandParser::default(), Vec::new(), Vec::new());
    for chunk in bytes.chunks(pieces) {
        buffer.extend_from_slice(chunk);
        loop {
            match parser.parse(&buffer, limits) {
                Ok(Some(parsed)) => {
                    buffer.drain(..parsed.consumed);
                    commands.push(Ok(parsed.args));
                }
                Ok(None) => break,
                Err(error) => {
                    commands.push(Err(error));
                    return commands;
                }
            }
        }
    }
    commands
}

/// Fuzz body: arbitrary bytes through the parser, command after command, and each command
/// through [`crate::command::ClientCommand::parse`]. Never panics; each parse consumes at
/// least one byte and no more than it was given, respects the limits, and an array command
/// re-encoded as RESP parses back to the same arguments; and the same bytes arriving one at a
/// time through a [`CommandParser`] (as a connection reads them) give the same commands and
/// fail where the whole buffer fails.
#[cfg(feature = "fuzzing")]
pub fn fuzz_parse(bytes: &[u8]) {
    let limits = Limits {
        max_args: 16,
        max_arg_bytes: 64,
    };
    assert_eq!(
        parse_in_pieces(bytes, 1, limits),
        parse_in_pieces(bytes, bytes.len().max(1), limits),
        "byte by byte and whole, the same commands"
    );
    let mut rest = bytes;
    while let Ok(Some(parsed)) = parse_command(rest, limits) {
        assert!(parsed.consumed >= 1 && parsed.consumed <= rest.len());
        assert!(parsed.args.len() <= limits.max_args);
        assert!(
            parsed
                .args
                .iter()
                .all(|arg| arg.len() <= limits.max_arg_bytes)
        );
        if !parsed.args.is_empty() {
            let _ = crate::command::ClientCommand::parse(parsed.args.clone());
            let mut encoded = Vec::new();
            verity_core::Frame::Array(
                parsed
                    .args
                    .iter()
                    .cloned()
                    .map(verity_core::Frame::Bulk)
                    .collect(),
            )
            .encode(&mut encoded);
            let again = parse_command(&encoded, limits).expect("re-encoded command parses");
            assert_eq!(
                again.map(|p| (p.args, p.consumed)),
                Some((parsed.args, encoded.len()))
            );
        }
        rest = &rest[parsed.consumed..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_args: 8,
        max_arg_bytes: 16,
    };

    fn args(parsed: Option<Parsed>) -> Vec<String> {
        parsed
            .unwrap()
            .args
            .into_iter()
            .map(|a| String::from_utf8(a).unwrap())
            .collect()
    }

    #[test]
    fn arrays_parse_and_every_prefix_is_incomplete() {
        let wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let parsed = parse_command(wire, LIMITS).unwrap().unwrap();
        assert_eq!(parsed.consumed, wire.len());
        assert_eq!(args(Some(parsed)), ["SET", "k", "hello"]);
        for cut in 0..wire.len() {
            assert_eq!(
                parse_command(&wire[..cut], LIMITS).unwrap(),
                None,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn inline_commands_split_words_and_quotes() {
        assert_eq!(
            args(parse_command(b"SET hello world\r\n", LIMITS).unwrap()),
            ["SET", "hello", "world"]
        );
        assert_eq!(
            args(parse_command(b"set k \"two words\"\n", LIMITS).unwrap()),
            ["set", "k", "two words"]
        );
        assert!(parse_command(b"SET \"open\r\n", LIMITS).is_err());
        assert_eq!(
            parse_command(b"\r\n", LIMITS).unwrap().unwrap().args.len(),
            0
        );
    }

    #[test]
    fn replies_parse_back_from_their_encoding_and_every_prefix_is_incomplete() {
        let frame = Frame::Array(vec![
            Frame::ok(),
            Frame::error("ERR x"),
            Frame::Integer(-7),
            Frame::text("hi"),
            Frame::Null,
            Frame::NullArray,
            Frame::Array(vec![Frame::Integer(1)]),
        ]);
        let mut wire = Vec::new();
        frame.encode(&mut wire);
        assert_eq!(
            parse_reply(&wire, LIMITS).unwrap(),
            Some((frame, wire.len()))
        );
        for cut in 0..wire.len() {
            assert_eq!(
                parse_reply(&wire[..cut], LIMITS).unwrap(),
                None,
                "cut {cut}"
            );
        }
        assert!(parse_reply(b"?x\r\n", LIMITS).is_err());
    }

    #[test]
    fn limits_and_garbage_are_errors_not_allocations() {
        assert!(matches!(
            parse_command(b"*9999999999\r\n", LIMITS),
            Err(ProtocolError::Limit(_))
        ));
        assert!(matches!(
            parse_command(b"*1\r\n$999999999\r\n", LIMITS),
            Err(ProtocolError::Limit(_))
        ));
        assert!(parse_command(b"*1\r\n:5\r\n", LIMITS).is_err());
        assert!(parse_command(b"*1\r\n$2\r\nabcd\r\n", LIMITS).is_err());
        assert!(parse_command(b"*x\r\n", LIMITS).is_err());
        assert!(parse_command(b"*0\r\n", LIMITS).is_err());
    }

    #[test]
    fn a_command_fed_in_any_pieces_parses_as_it_does_whole() {
        let wires: [&[u8]; 4] = [
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nGET k\r\n",
            b"SET k \"two words\"\r\n*1\r\n$4\r\nPING\r\n",
            b"*2\r\n$3\r\nGET\r\n$16\r\n0123456789abcdef\r\n",
            b"*2\r\n$3\r\nGET\r\n$2\r\nabcd\r\n",
        ];
        for wire in wires {
            let whole: Vec<_> = {
                let (mut rest, mut commands) = (wire, Vec::new());
                loop {
                    match parse_command(rest, LIMITS) {
                        Ok(Some(parsed)) => {
                            rest = &rest[parsed.consumed..];
                            commands.push(Ok(parsed.args));
                        }
                        Ok(None) => break,
                        Err(error) => {
                            commands.push(Err(error));
                            break;
                        }
                    }
                }
                commands
            };
            for piece in 1..=3 {
                let commands = parse_in_pieces(wire, piece, LIMITS);
                assert_eq!(commands, whole, "{wire:?} in pieces of {piece}");
            }
        }
    }
}
