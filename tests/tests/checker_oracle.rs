//! The checker against the brute-force oracle (every order of every operation) on small
//! wide histories: appends, puts and reads with writes of unknown outcome, linearizable or
//! with a stale read, and mutated. Guards the shortcuts the checker takes on such histories
//! (dropping unobserved info writes, pruning by the next read's value).

use proptest::prelude::*;
use verity_sim::checker::{Budget, Verdict, check};
use verity_sim::fuzzing::brute_force;
use verity_sim::generate::{Wide, wide_history};
use verity_sim::history::{EventType, Function, Value};

fn shapes() -> impl Strategy<Value = (Wide, u64)> {
    (
        1u64..4,
        1u64..3,
        1u64..8,
        0u64..700,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(processes, keys, operations, info, stale_read, seed)| {
            let shape = Wide {
                processes,
                keys,
                operations,
                info_per_mille: info,
                stale_read,
                hard_key: false,
            };
            (shape, seed)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_checker_agrees_with_brute_force((shape, seed) in shapes(), mutate in any::<Option<(prop::sample::Index, u8)>>()) {
        let mut history = wide_history(shape, seed);
        // Optionally truncate or extend one read's value, which may or may not break it.
        if let Some((pick, how)) = mutate {
            let reads: Vec<usize> = history.events.iter().enumerate()
                .filter(|(_, e)| e.kind == EventType::Ok && e.f == Function::Get)
                .map(|(i, _)| i)
                .collect();
            if !reads.is_empty() {
                let event = &mut history.events[reads[pick.index(reads.len())]];
                let text = match &event.value { Some(Value::Str(s)) => s.clone(), _ => String::new() };
                let changed = match how % 3 {
                    0 => text.get(..text.len().saturating_sub(2)).unwrap_or("").to_string(),
                    1 => format!("{text}x 0 1 y"),
                    _ => text.chars().rev().collect(),
                };
                event.value = (!changed.is_empty()).then_some(Value::Str(changed));
            }
        }
        let ops = history.operations().unwrap();
        prop_assume!(ops.len() <= 8);
        let report = check(&ops, &mut Budget::steps(1_000_000));
        prop_assert_ne!(report.verdict, Verdict::Undecided);
        prop_assert_eq!(
            report.verdict == Verdict::Linearizable,
            brute_force(&ops),
            "{}",
            history.to_json_lines()
        );
    }
}
