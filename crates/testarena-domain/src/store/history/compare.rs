//! The comparison of a queue with a base queue: what failed anew, what was
//! fixed, what is still failing, flaky or slower, what was added or
//! removed. A pure function of the two queues as read and the facts of
//! the newer one's cases.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::CaseFacts;
use super::rules::is_slower;
use crate::api::{Comparison, SlowerTest, TestRef};
use crate::models::{QueueDetail, TestCaseRow};
use crate::status::Status;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    Skip,
}

fn verdict(case: &TestCaseRow) -> Verdict {
    match case.status() {
        Status::Passed => Verdict::Pass,
        Status::Failed | Status::Error => Verdict::Fail,
        _ => Verdict::Skip,
    }
}

/// (scenario, name) → the case, over every task of the queue.
fn cases(detail: &QueueDetail) -> BTreeMap<TestRef, (&str, &TestCaseRow)> {
    detail
        .tasks
        .iter()
        .flat_map(|(task, cases)| {
            cases.iter().map(move |c| {
                let key = TestRef {
                    scenario: task.scenario.clone(),
                    name: c.name.clone(),
                };
                (key, (task.id.as_str(), c))
            })
        })
        .collect()
}

/// Compares `now` with `base` (`None`: no earlier queue; every test is
/// `added`). `facts` are `now`'s case facts ([`super::case_facts`]).
/// `removed` lists only tests of scenarios `now` ran in full (a task
/// without `only`): a subset or a `failed_only` rerun leaves the rest out
/// on purpose.
pub fn compare_queues(
    now: &QueueDetail,
    facts: &HashMap<(String, String), CaseFacts>,
    base: Option<&QueueDetail>,
) -> Comparison {
    let here = cases(now);
    let there = base.map(cases).unwrap_or_default();
    let mut out = Comparison {
        base: base.map(|b| b.queue.id.clone()),
        ..Comparison::default()
    };
    for (key, (task_id, case)) in &here {
        let fact = facts
            .get(&((*task_id).to_owned(), case.name.clone()))
            .copied()
            .unwrap_or_default();
        let now_v = verdict(case);
        if now_v == Verdict::Fail && fact.known_flaky {
            out.flaky.push(key.clone());
        }
        if now_v == Verdict::Pass
            && let (Some(base_ms), Some(now_ms)) = (fact.baseline_ms, case.duration_ms)
            && is_slower(i64::from(now_ms), base_ms)
        {
            out.slower.push(SlowerTest {
                scenario: key.scenario.clone(),
                name: key.name.clone(),
                base_ms,
                now_ms: i64::from(now_ms),
            });
        }
        let Some((_, old)) = there.get(key) else {
            out.added.push(key.clone());
            continue;
        };
        match (verdict(old), now_v) {
            (Verdict::Pass, Verdict::Fail) => out.new_failures.push(key.clone()),
            (Verdict::Fail, Verdict::Pass) => out.fixed.push(key.clone()),
            (Verdict::Fail, Verdict::Fail) => out.still_failing.push(key.clone()),
            _ => {}
        }
    }
    let full: BTreeSet<&str> = now
        .tasks
        .iter()
        .filter(|(t, _)| t.only_json.is_none())
        .map(|(t, _)| t.scenario.as_str())
        .collect();
    out.removed = there
        .keys()
        .filter(|k| full.contains(k.scenario.as_str()) && !here.contains_key(*k))
        .cloned()
        .collect();
    out
}
