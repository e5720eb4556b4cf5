//! Replies that describe the server: `HELLO`, `CONFIG GET`, and `COMMAND` with its `COUNT`,
//! `LIST`, `INFO` and `DOCS`, built from the command specs so they always tell the truth about
//! what this server accepts.

use crate::command::{CommandQuery, all_specs, find_spec};
use verity_core::Frame;
use verity_core::kv::cmd::{Access, Spec};

/// `HELLO`'s reply for connection `id` on a node in `role`.
#[must_use]
pub fn hello(id: u64, role: &str) -> Frame {
    let pairs = [
        ("server", Frame::text("verity")),
        ("version", Frame::text(env!("CARGO_PKG_VERSION"))),
        ("proto", Frame::Integer(2)),
        ("id", Frame::count(id)),
        ("mode", Frame::text("cluster")),
        ("role", Frame::text(role)),
        ("modules", Frame::Array(Vec::new())),
    ];
    Frame::Array(
        pairs
            .into_iter()
            .flat_map(|(name, value)| [Frame::text(name), value])
            .collect(),
    )
}

/// `CONFIG GET`: the `(name, value)` pairs of `settings` matching any of `patterns` (globs).
#[must_use]
pub fn config_get(settings: &[(&'static str, String)], patterns: &[String]) -> Frame {
    let matches = |name: &str| {
        patterns
            .iter()
            .any(|pattern| verity_core::kv::cmd::glob::matches(pattern.as_bytes(), name.as_bytes()))
    };
    Frame::Array(
        settings
            .iter()
            .filter(|(name, _)| matches(name))
            .flat_map(|(name, value)| [Frame::text(*name), Frame::text(value.clone())])
            .collect(),
    )
}

/// `COMMAND …`.
#[must_use]
pub fn command(query: &CommandQuery) -> Frame {
    let lookup = |names: &[String]| -> Vec<Option<&'static Spec>> {
        names.iter().map(|n| find_spec(n)).collect()
    };
    match query {
        CommandQuery::Count => Frame::count(all_specs().count()),
        CommandQuery::List => Frame::Array(all_specs().map(|s| Frame::text(s.name)).collect()),
        CommandQuery::All => Frame::Array(all_specs().map(info).collect()),
        CommandQuery::Info(names) => Frame::Array(
            lookup(names)
                .into_iter()
                .map(|spec| spec.map_or(Frame::Null, info))
                .collect(),
        ),
        CommandQuery::Docs(names) => {
            let specs: Vec<&Spec> = if names.is_empty() {
                all_specs().collect()
            } else {
                lookup(names).into_iter().flatten().collect()
            };
            Frame::Array(
                specs
                    .into_iter()
                    .flat_map(|spec| [Frame::text(spec.name), docs(spec)])
                    .collect(),
            )
        }
    }
}

/// One command's `COMMAND INFO` entry, in Redis 7's layout.
fn info(spec: &Spec) -> Frame {
    let flags = match (spec.group, spec.access) {
        ("connection" | "server" | "verity" | "transactions", _) if spec.keys.0 == 0 => {
            vec!["fast"]
        }
        (_, Access::Read) => vec!["readonly"],
        (_, Access::Write) => vec!["write"],
    };
    let (first, last, step) = spec.keys;
    Frame::Array(vec![
        Frame::text(spec.name),
        Frame::Integer(spec.arity),
        Frame::Array(
            flags
                .into_iter()
                .map(|f| Frame::Simple(f.to_string()))
                .collect(),
        ),
        Frame::Integer(first),
        Frame::Integer(last),
        Frame::Integer(step),
        Frame::Array(vec![Frame::Simple(format!("@{}", spec.group))]),
        Frame::Array(Vec::new()),
        Frame::Array(Vec::new()),
        Frame::Array(Vec::new()),
    ])
}

/// One command's `COMMAND DOCS` entry.
fn docs(spec: &Spec) -> Frame {
    Frame::Array(vec![
        Frame::text("summary"),
        Frame::text(spec.summary),
        Frame::text("since"),
        Frame::text("0.1.0"),
        Frame::text("group"),
        Frame::text(spec.group),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_count_matches_the_list_and_info_knows_every_listed_command() {
        let Frame::Integer(count) = command(&CommandQuery::Count) else {
            panic!()
        };
        let Frame::Array(names) = command(&CommandQuery::List) else {
            panic!()
        };
        assert_eq!(count as usize, names.len());
        assert!(count > 50, "{count}");
        let names: Vec<String> = names
            .into_iter()
            .map(|n| match n {
                Frame::Bulk(b) => String::from_utf8(b).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        let Frame::Array(infos) = command(&CommandQuery::Info(names)) else {
            panic!()
        };
        assert!(infos.iter().all(|i| matches!(i, Frame::Array(_))));
        assert_eq!(
            command(&CommandQuery::Info(vec!["nope".into()])),
            Frame::Array(vec![Frame::Null])
        );
    }

    #[test]
    fn config_get_matches_globs() {
        let settings = [
            ("appendfsync", "always".to_string()),
            ("maxclients", "10".to_string()),
        ];
        assert_eq!(
            config_get(&settings, &["append*".into()]),
            Frame::Array(vec![Frame::text("appendfsync"), Frame::text("always")])
        );
        let Frame::Array(all) = config_get(&settings, &["*".into()]) else {
            panic!()
        };
        assert_eq!(all.len(), 4);
    }
}
