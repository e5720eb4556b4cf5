//! Client histories in the shared JSON Lines format (`shared/specs/history-format.md`).
//!
//! A history is a list of [`Event`]s in real-time order; [`History::operations`] pairs each
//! invocation with its completion into [`Operation`]s, the unit the checker works on.

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
}

/// The `value` field: absent/`null`, a string, or a `[expected, new]` pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A string value.
    Str(String),
    /// A compare-and-swap's `[expected, new]`.
    Pair(Option<String>, Option<String>),
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
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OpOutcome {
    /// It took effect. For a get, the value read.
    Ok(Option<String>),
    /// It did not take effect (for a cas: the comparison failed).
    Fail,
    /// Unknown; it may take effect at any later time.
    Info,
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

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| {
            v.as_deref()
                .map_or("null".to_string(), |s| format!("{s:?}"))
        };
        write!(f, "process {} ", self.process)?;
        match &self.kind {
            OpKind::Get => write!(f, "get {:?}", self.key)?,
            OpKind::Put(v) => write!(f, "put {:?} {v:?}", self.key)?,
            OpKind::Delete => write!(f, "delete {:?}", self.key)?,
            OpKind::Cas { expected, new } => {
                write!(f, "cas {:?} {} -> {}", self.key, show(expected), show(new))?
            }
            OpKind::Append(v) => write!(f, "append {:?} {v:?}", self.key)?,
        }
        match &self.outcome {
            OpOutcome::Ok(read) if self.kind == OpKind::Get => write!(f, " = {}", show(read))?,
            OpOutcome::Ok(_) => write!(f, " ok")?,
            OpOutcome::Fail => write!(f, " fail")?,
            OpOutcome::Info => write!(f, " info")?,
        }
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
                EventType::Ok => OpOutcome::Ok(match (&op.kind, &event.value) {
                    (OpKind::Get, Some(Value::Str(read))) => Some(read.clone()),
                    (OpKind::Get, None) => None,
                    (OpKind::Get, Some(other)) => {
                        return Err(error(format!(
                            "a get reads a string or null, not {other:?}"
                        )));
                    }
                    _ => None,
                }),
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
    }
}

fn invoke_kind(event: &Event) -> Result<OpKind, String> {
    let string = |what: &str| match &event.value {
        Some(Value::Str(s)) => Ok(s.clone()),
        other => Err(format!("{what} takes a string value, not {other:?}")),
    };
    Ok(match event.f {
        Function::Get => OpKind::Get,
        Function::Delete => OpKind::Delete,
        Function::Put => OpKind::Put(string("put")?),
        Function::Append => OpKind::Append(string("append")?),
        Function::Cas => match &event.value {
            Some(Value::Pair(expected, new)) => OpKind::Cas {
                expected: expected.clone(),
                new: new.clone(),
            },
            other => return Err(format!("cas takes an [expected, new] pair, not {other:?}")),
        },
    })
}

/// Builds the two events of an operation for recording: the invoke, and its completion.
#[must_use]
pub fn invoke_event(process: u64, key: &str, kind: &OpKind, time: u64) -> Event {
    let value = match kind {
        OpKind::Get | OpKind::Delete => None,
        OpKind::Put(v) | OpKind::Append(v) => Some(Value::Str(v.clone())),
        OpKind::Cas { expected, new } => Some(Value::Pair(expected.clone(), new.clone())),
    };
    Event {
        process,
        kind: EventType::Invoke,
        f: function(kind),
        key: key.to_string(),
        value,
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
    let (event_type, value) = match outcome {
        OpOutcome::Ok(read) if *kind == OpKind::Get => {
            (EventType::Ok, read.clone().map(Value::Str))
        }
        OpOutcome::Ok(_) => (EventType::Ok, invoke_event(process, key, kind, time).value),
        OpOutcome::Fail => (EventType::Fail, None),
        OpOutcome::Info => (EventType::Info, None),
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
