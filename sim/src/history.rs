//! Client histories in the shared JSON Lines format (`shared/specs/history-format.md`).
//!
//! A history is a list of [`Event`]s in real-time order; [`History::operations`] pairs each
//! invocation with its completion into [`Operation`]s, the unit the checker works on.
//!
//! Verity extends the shared format by two functions the spec does not have, for the commands
//! its simulated clients send beyond the spec's five (a history without them is exactly the
//! shared format):
//!
//! - `incr`: `value` on invoke is the integer added (`INCRBY`); on `ok` the integer result. A
//!   key that is absent counts as 0. `fail`: the value was not an integer, nothing changed.
//! - `txn`: several single-key operations that take effect at one instant, in order (`MSET`,
//!   `MGET`, `DEL` of several keys, `MULTI`/`EXEC`). `key` is the first one's key; `value` on
//!   invoke is a list of `[f, key, argument]` (argument as for that `f`: a string, an integer,
//!   an `[expected, new]` pair or `null`); on `ok` each entry gains a fourth element, its own
//!   result: the value read (`get`), the integer result (`incr`), `true` (it took effect) or
//!   `false` (a `cas` that did not swap, an `incr` of a non-integer).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What kind of event a line records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The operation started.
    Invoke,
    /// It took effect, with the given result.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Its outcome is unknown: it may take effect at any later time, or never.
    Info,
}

/// The operation's function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    /// Read the current value.
    Get,
    /// Overwrite.
    Put,
    /// Make absent.
    Delete,
    /// Compare and swap.
    Cas,
    /// Append to the current value.
    Append,
    /// Add to the integer value (an extension of the shared format).
    Incr,
    /// Several operations at one instant (an extension of the shared format).
    Txn,
}

/// The `value` field: absent/`null`, a string, an integer, a `[expected, new]` pair, or a
/// transaction's list of operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A string value.
    Str(String),
    /// An integer (`incr`'s argument and result).
    Int(i64),
    /// A compare-and-swap's `[expected, new]`.
    Pair(Option<String>, Option<String>),
    /// A `txn`'s operations: `[f, key, argument]`, and on `ok` also `result`.
    Txn(Vec<serde_json::Value>),
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The logical client.
    pub process: u64,
    /// Invoke or completion kind.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The function.
    pub f: Function,
    /// The key.
    pub key: String,
    /// Argument (invoke) or result (ok).
    #[serde(default)]
    pub value: Option<Value>,
    /// Nanoseconds since the history began; informative only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
}

/// A history file that does not follow the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct HistoryError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub reason: String,
}

/// What an operation does, with its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Read.
    Get,
    /// Overwrite with a value.
    Put(String),
    /// Make absent.
    Delete,
    /// If current == `expected`, set `new` (`None`: delete).
    Cas {
        /// The expected current state.
        expected: Option<String>,
        /// The new state.
        new: Option<String>,
    },
    /// Append a string.
    Append(String),
    /// Add to the value read as a signed 64-bit integer (absent: 0).
    Incr(i64),
    /// Single-key operations (never `Atomic` themselves) that take effect at one instant, in
    /// order.
    Atomic(Vec<Part>),
}

/// One single-key operation of an [`OpKind::Atomic`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Part {
    /// Its key.
    pub key: String,
    /// What it does.
    pub kind: OpKind,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OpOutcome {
    /// It took effect. For a get, the value read; for an incr, the result.
    Ok(Option<String>),
    /// It did not take effect (for a cas: the comparison failed; for an incr: the value was
    /// not an integer; for an atomic operation: none of it ran).
    Fail,
    /// Unknown; it may take effect at any later time.
    Info,
    /// An atomic operation took effect: each part's own outcome (`Ok` or `Fail`), in order.
    Each(Vec<OpOutcome>),
}

impl OpKind {
    /// Whether its `ok` outcome carries a result the model must match (a get's value read, an
    /// incr's result).
    #[must_use]
    pub fn returns_value(&self) -> bool {
        matches!(self, OpKind::Get | OpKind::Incr(_))
    }

    /// Whether it only reads (a get, or an atomic operation of gets).
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        match self {
            OpKind::Get => true,
            OpKind::Atomic(parts) => parts.iter().all(|part| part.kind == OpKind::Get),
            _ => false,
        }
    }
}

impl Operation {
    /// The keys it touches, each once, in order of first mention.
    #[must_use]
    pub fn keys(&self) -> Vec<&str> {
        match &self.kind {
            OpKind::Atomic(parts) => {
                let mut keys: Vec<&str> = Vec::new();
                for part in parts {
                    if !keys.contains(&part.key.as_str()) {
                        keys.push(&part.key);
                    }
                }
                keys
            }
            _ => vec![&self.key],
        }
    }
}

/// An invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The logical client.
    pub process: u64,
    /// The key.
    pub key: String,
    /// What it does.
    pub kind: OpKind,
    /// How it ended.
    pub outcome: OpOutcome,
    /// Position of the invoke event in the history (real-time order).
    pub invoke_position: usize,
    /// Position of the completion, `None` for info (it may take effect any time later).
    pub complete_position: Option<usize>,
    /// Invoke time, nanoseconds, if recorded.
    pub invoke_time: Option<u64>,
    /// Completion time, nanoseconds, if recorded.
    pub complete_time: Option<u64>,
    /// The client connection that sent it, when the recorder knows (the simulator does; the
    /// file format does not carry it). A connection's operations took effect in the order it
    /// sent them, which the checker then also requires of them.
    pub connection: Option<u64>,
}

/// `null` or the string quoted.
fn show(value: &Option<String>) -> String {
    value
        .as_deref()
        .map_or("null".to_string(), |s| format!("{s:?}"))
}

/// A single-key operation as text: `put "k" "v"`.
fn describe(key: &str, kind: &OpKind) -> String {
    match kind {
        OpKind::Get => format!("get {key:?}"),
        OpKind::Put(v) => format!("put {key:?} {v:?}"),
        OpKind::Delete => format!("delete {key:?}"),
        OpKind::Cas { expected, new } => {
            format!("cas {key:?} {} -> {}", show(expected), show(new))
        }
        OpKind::Append(v) => format!("append {key:?} {v:?}"),
        OpKind::Incr(by) => format!("incr {key:?} {by}"),
        OpKind::Atomic(parts) => {
            let parts: Vec<String> = parts.iter().map(|p| describe(&p.key, &p.kind)).collect();
            format!("txn [{}]", parts.join("; "))
        }
    }
}

/// An outcome as text, after the operation: ` = "v"`, ` ok`, ` fail`, ` info`.
fn describe_outcome(kind: &OpKind, outcome: &OpOutcome) -> String {
    match outcome {
        OpOutcome::Ok(read) if kind.returns_value() => format!(" = {}", show(read)),
        OpOutcome::Ok(_) => " ok".to_string(),
        OpOutcome::Fail => " fail".to_string(),
        OpOutcome::Info => " info".to_string(),
        OpOutcome::Each(outcomes) => {
            let OpKind::Atomic(parts) = kind else {
                return " ok".to_string();
            };
            let each: Vec<String> = parts
                .iter()
                .zip(outcomes)
                .map(|(part, outcome)| describe_outcome(&part.kind, outcome).trim().to_string())
                .collect();
            format!(" = [{}]", each.join("; "))
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "process {} {}{}",
            self.process,
            describe(&self.key, &self.kind),
            describe_outcome(&self.kind, &self.outcome)
        )?;
        let time =
            |t: Option<u64>| t.map_or("?".to_string(), |t| format!("{:.3}ms", t as f64 / 1e6));
        let end = if self.complete_position.is_some() {
            time(self.complete_time)
        } else {
            "∞".to_string()
        };
        write!(f, "  [{} .. {}]", time(self.invoke_time), end)
    }
}

/// A whole history: events in real-time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The events, oldest first.
    pub events: Vec<Event>,
}

impl History {
    /// Parses JSON Lines. Blank lines are ignored; anything else malformed is an error naming
    /// its line. The events are also validated by [`History::operations`].
    pub fn parse(text: &str) -> Result<History, HistoryError> {
        let mut events = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let event: Event = serde_json::from_str(line).map_err(|error| HistoryError {
                line: number + 1,
                reason: error.to_string(),
            })?;
            events.push((number + 1, event));
        }
        let history = History {
            events: events.iter().map(|(_, e)| e.clone()).collect(),
        };
        history.pair(&events.iter().map(|(n, _)| *n).collect::<Vec<_>>())?;
        Ok(history)
    }

    /// Renders the history as JSON Lines.
    #[must_use]
    pub fn to_json_lines(&self) -> String {
        let mut out = String::new();
        for event in &self.events {
            out.push_str(&serde_json::to_string(event).expect("events serialize"));
            out.push('\n');
        }
        out
    }

    /// Pairs invocations with completions. An invocation never completed counts as `info`.
    pub fn operations(&self) -> Result<Vec<Operation>, HistoryError> {
        let lines: Vec<usize> = (1..=self.events.len()).collect();
        self.pair(&lines)
    }

    fn pair(&self, lines: &[usize]) -> Result<Vec<Operation>, HistoryError> {
        let mut operations: Vec<Operation> = Vec::new();
        let mut open: BTreeMap<u64, usize> = BTreeMap::new();
        let mut retired: BTreeMap<u64, usize> = BTreeMap::new();
        for (position, event) in self.events.iter().enumerate() {
            let line = lines[position];
            let error = |reason: String| HistoryError { line, reason };
            if event.kind == EventType::Invoke {
                if let Some(&earlier) = retired.get(&event.process) {
                    return Err(error(format!(
                        "process {} invokes again after its info completion on line {earlier}; a process never continues after info",
                        event.process
                    )));
                }
                if open.contains_key(&event.process) {
                    return Err(error(format!(
                        "process {} invokes while its previous operation is still open",
                        event.process
                    )));
                }
                let kind = invoke_kind(event).map_err(error)?;
                open.insert(event.process, operations.len());
                operations.push(Operation {
                    process: event.process,
                    key: event.key.clone(),
                    kind,
                    outcome: OpOutcome::Info,
                    invoke_position: position,
                    complete_position: None,
                    invoke_time: event.time,
                    complete_time: None,
                    connection: None,
                });
                continue;
            }
            let Some(id) = open.remove(&event.process) else {
                return Err(error(format!(
                    "process {} completes an operation it never invoked",
                    event.process
                )));
            };
            let op = &mut operations[id];
            let invoked_f = function(&op.kind);
            if event.f != invoked_f || event.key != op.key {
                return Err(error(format!(
                    "completion {:?} {:?} does not match the invocation {:?} {:?}",
                    event.f, event.key, invoked_f, op.key
                )));
            }
            op.outcome = match event.kind {
                EventType::Ok => ok_outcome(&op.kind, event.value.as_ref()).map_err(error)?,
                EventType::Fail => OpOutcome::Fail,
                EventType::Info => {
                    retired.insert(event.process, line);
                    OpOutcome::Info
                }
                EventType::Invoke => unreachable!("handled above"),
            };
            if event.kind != EventType::Info {
                op.complete_position = Some(position);
                op.complete_time = event.time;
            }
        }
        Ok(operations)
    }
}

fn function(kind: &OpKind) -> Function {
    match kind {
        OpKind::Get => Function::Get,
        OpKind::Put(_) => Function::Put,
        OpKind::Delete => Function::Delete,
        OpKind::Cas { .. } => Function::Cas,
        OpKind::Append(_) => Function::Append,
        OpKind::Incr(_) => Function::Incr,
        OpKind::Atomic(_) => Function::Txn,
    }
}

/// The argument of a single-key operation `f`, from its `value`.
fn single_kind(f: Function, value: Option<&Value>) -> Result<OpKind, String> {
    let string = |what: &str| match value {
        Some(Value::Str(s)) => Ok(s.clone()),
        other => Err(format!("{what} takes a string value, not {other:?}")),
    };
    Ok(match f {
        Function::Get => OpKind::Get,
        Function::Delete => OpKind::Delete,
        Function::Put => OpKind::Put(string("put")?),
        Function::Append => OpKind::Append(string("append")?),
        Function::Cas => match value {
            Some(Value::Pair(expected, new)) => OpKind::Cas {
                expected: expected.clone(),
                new: new.clone(),
            },
            other => return Err(format!("cas takes an [expected, new] pair, not {other:?}")),
        },
        Function::Incr => match value {
            Some(Value::Int(by)) => OpKind::Incr(*by),
            other => return Err(format!("incr takes an integer, not {other:?}")),
        },
        Function::Txn => return Err("a txn cannot hold a txn".to_string()),
    })
}

fn invoke_kind(event: &Event) -> Result<OpKind, String> {
    if event.f != Function::Txn {
        return single_kind(event.f, event.value.as_ref());
    }
    let Some(Value::Txn(entries)) = &event.value else {
        return Err(format!(
            "txn takes a list of [f, key, argument], not {:?}",
            event.value
        ));
    };
    let parts: Vec<Part> = entries
        .iter()
        .map(|entry| txn_entry(entry).map(|(part, _)| part))
        .collect::<Result<_, _>>()?;
    if parts.is_empty() {
        return Err("a txn needs at least one operation".to_string());
    }
    if parts[0].key != event.key {
        return Err(format!(
            "a txn's key is its first operation's key {:?}, not {:?}",
            parts[0].key, event.key
        ));
    }
    Ok(OpKind::Atomic(parts))
}

/// One `[f, key, argument]` (or `[f, key, argument, result]`) entry of a `txn`.
fn txn_entry(entry: &serde_json::Value) -> Result<(Part, Option<&serde_json::Value>), String> {
    let bad =
        || format!("a txn entry is [f, key, argument] or [f, key, argument, result], not {entry}");
    let fields = entry.as_array().ok_or_else(bad)?;
    let (f, key, argument, result) = match fields.as_slice() {
        [f, key, argument] => (f, key, argument, None),
        [f, key, argument, result] => (f, key, argument, Some(result)),
        _ => return Err(bad()),
    };
    let f: Function = serde_json::from_value(f.clone()).map_err(|e| format!("{e} in {entry}"))?;
    let key = key.as_str().ok_or_else(bad)?.to_string();
    let argument: Option<Value> = if argument.is_null() {
        None
    } else {
        Some(serde_json::from_value(argument.clone()).map_err(|e| format!("{e} in {entry}"))?)
    };
    let kind = single_kind(f, argument.as_ref())?;
    Ok((Part { key, kind }, result))
}

/// The `ok` outcome of an operation invoked as `kind`, from the completion's `value`.
fn ok_outcome(kind: &OpKind, value: Option<&Value>) -> Result<OpOutcome, String> {
    Ok(match (kind, value) {
        (OpKind::Get, Some(Value::Str(read))) => OpOutcome::Ok(Some(read.clone())),
        (OpKind::Get, None) => OpOutcome::Ok(None),
        (OpKind::Get, Some(other)) => {
            return Err(format!("a get reads a string or null, not {other:?}"));
        }
        (OpKind::Incr(_), Some(Value::Int(result))) => OpOutcome::Ok(Some(result.to_string())),
        (OpKind::Incr(_), other) => {
            return Err(format!(
                "an ok incr carries its integer result, not {other:?}"
            ));
        }
        (OpKind::Atomic(parts), Some(Value::Txn(entries))) if entries.len() == parts.len() => {
            let mut each = Vec::new();
            for (part, entry) in parts.iter().zip(entries) {
                let (completed, result) = txn_entry(entry)?;
                if completed != *part {
                    return Err(format!("txn entry {entry} does not match the invocation"));
                }
                each.push(part_outcome(&part.kind, result).ok_or_else(|| {
                    format!("txn entry {entry} needs a result of its kind as a fourth element")
                })?);
            }
            OpOutcome::Each(each)
        }
        (OpKind::Atomic(_), other) => {
            return Err(format!(
                "an ok txn repeats its operations, each with its result, not {other:?}"
            ));
        }
        _ => OpOutcome::Ok(None),
    })
}

/// A txn entry's result as an outcome: `None` if it does not fit the entry's kind.
fn part_outcome(kind: &OpKind, result: Option<&serde_json::Value>) -> Option<OpOutcome> {
    use serde_json::Value as Json;
    Some(match (kind, result?) {
        (OpKind::Get, Json::Null) => OpOutcome::Ok(None),
        (OpKind::Get, Json::String(read)) => OpOutcome::Ok(Some(read.clone())),
        (OpKind::Incr(_), Json::Number(n)) => OpOutcome::Ok(Some(n.as_i64()?.to_string())),
        (OpKind::Incr(_) | OpKind::Cas { .. }, Json::Bool(false)) => OpOutcome::Fail,
        (
            OpKind::Put(_) | OpKind::Delete | OpKind::Cas { .. } | OpKind::Append(_),
            Json::Bool(true),
        ) => OpOutcome::Ok(None),
        _ => return None,
    })
}

/// The `value` of an operation's invocation.
fn invoke_value(kind: &OpKind) -> Option<Value> {
    match kind {
        OpKind::Get | OpKind::Delete => None,
        OpKind::Put(v) | OpKind::Append(v) => Some(Value::Str(v.clone())),
        OpKind::Cas { expected, new } => Some(Value::Pair(expected.clone(), new.clone())),
        OpKind::Incr(by) => Some(Value::Int(*by)),
        OpKind::Atomic(parts) => Some(Value::Txn(
            parts.iter().map(|part| txn_json(part, None)).collect(),
        )),
    }
}

/// A txn entry: `[f, key, argument]`, with `result` appended when given.
fn txn_json(part: &Part, outcome: Option<&OpOutcome>) -> serde_json::Value {
    use serde_json::Value as Json;
    let mut entry = vec![
        serde_json::to_value(function(&part.kind)).expect("functions serialize"),
        Json::String(part.key.clone()),
        serde_json::to_value(invoke_value(&part.kind)).expect("values serialize"),
    ];
    if let Some(outcome) = outcome {
        entry.push(match outcome {
            OpOutcome::Ok(Some(result)) => match (&part.kind, result.parse::<i64>()) {
                (OpKind::Incr(_), Ok(n)) => Json::from(n),
                _ => Json::String(result.clone()),
            },
            OpOutcome::Ok(None) if part.kind == OpKind::Get => Json::Null,
            OpOutcome::Ok(None) => Json::Bool(true),
            _ => Json::Bool(false),
        });
    }
    Json::Array(entry)
}

/// Builds the two events of an operation for recording: the invoke, and its completion.
#[must_use]
pub fn invoke_event(process: u64, key: &str, kind: &OpKind, time: u64) -> Event {
    Event {
        process,
        kind: EventType::Invoke,
        f: function(kind),
        key: key.to_string(),
        value: invoke_value(kind),
        time: Some(time),
    }
}

/// The completion event of an operation invoked as `kind`.
#[must_use]
pub fn completion_event(
    process: u64,
    key: &str,
    kind: &OpKind,
    outcome: &OpOutcome,
    time: u64,
) -> Event {
    let (event_type, value) = match (kind, outcome) {
        (OpKind::Get, OpOutcome::Ok(read)) => (EventType::Ok, read.clone().map(Value::Str)),
        (OpKind::Incr(_), OpOutcome::Ok(result)) => (
            EventType::Ok,
            result
                .as_deref()
                .and_then(|r| r.parse().ok())
                .map(Value::Int),
        ),
        (OpKind::Atomic(parts), OpOutcome::Each(each)) => (
            EventType::Ok,
            Some(Value::Txn(
                parts
                    .iter()
                    .zip(each)
                    .map(|(part, outcome)| txn_json(part, Some(outcome)))
                    .collect(),
            )),
        ),
        (_, OpOutcome::Ok(_) | OpOutcome::Each(_)) => (EventType::Ok, invoke_value(kind)),
        (_, OpOutcome::Fail) => (EventType::Fail, None),
        (_, OpOutcome::Info) => (EventType::Info, None),
    };
    Event {
        process,
        kind: event_type,
        f: function(kind),
        key: key.to_string(),
        value,
        time: Some(time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"process":0,"type":"invoke","f":"put","key":"x","value":"1","time":100}
{"process":1,"type":"invoke","f":"get","key":"x","value":null,"time":120}
{"process":0,"type":"ok","f":"put","key":"x","value":"1","time":900}
{"process":1,"type":"ok","f":"get","key":"x","value":"1","time":950}
{"process":2,"type":"invoke","f":"cas","key":"x","value":["1","2"],"time":1000}
{"process":2,"type":"info","f":"cas","key":"x","time":5000}
"#;

    #[test]
    fn the_spec_example_parses_into_three_operations() {
        let history = History::parse(EXAMPLE).unwrap();
        let ops = history.operations().unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[1].outcome, OpOutcome::Ok(Some("1".into())));
        assert_eq!(
            ops[2].kind,
            OpKind::Cas {
                expected: Some("1".into()),
                new: Some("2".into())
            }
        );
        assert_eq!(ops[2].outcome, OpOutcome::Info);
        assert_eq!(ops[2].complete_position, None);
    }

    #[test]
    fn a_history_round_trips_through_json_lines() {
        let history = History::parse(EXAMPLE).unwrap();
        assert_eq!(History::parse(&history.to_json_lines()).unwrap(), history);
    }

    #[test]
    fn malformed_lines_are_reported_with_their_line_number() {
        let cases = [
            (
                "\n\n{\"process\":0,\"type\":\"invoke\"}\n",
                3,
                "missing field",
            ),
            (
                "{\"process\":0,\"type\":\"ok\",\"f\":\"get\",\"key\":\"x\"}\n",
                1,
                "never invoked",
            ),
            (
                "{\"process\":0,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"x\"}\n{\"process\":0,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"x\"}\n",
                2,
                "still open",
            ),
            (
                "{\"process\":0,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"x\"}\n{\"process\":0,\"type\":\"info\",\"f\":\"get\",\"key\":\"x\"}\n{\"process\":0,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"x\"}\n",
                3,
                "after its info",
            ),
            (
                "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"x\",\"value\":null}\n",
                1,
                "string value",
            ),
            (
                "{\"process\":0,\"type\":\"invoke\",\"f\":\"frob\",\"key\":\"x\"}\n",
                1,
                "unknown variant",
            ),
            ("not json\n", 1, "expected"),
        ];
        for (text, line, needle) in cases {
            let error = History::parse(text).unwrap_err();
            assert_eq!(error.line, line, "{text}");
            assert!(
                error.reason.contains(needle),
                "{}: wanted {needle:?}",
                error.reason
            );
        }
    }
}
