//! The JSON types of history (DESIGN section 11): a test's runs, the tests
//! list, the comparison of two queues, rerun options and scenario subsets.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::status::Status;

/// The most queues one rerun makes.
pub const MAX_RERUN_COUNT: u32 = 20;

/// One run of a test, as `GET /api/v1/tests/history` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TestRun {
    pub queue_id: String,
    pub task_id: String,
    #[schema(required)]
    pub commit: Option<String>,
    pub branch: String,
    pub target: String,
    /// `qemu` or the id of the board it ran on.
    pub ran_on: String,
    pub status: Status,
    #[schema(required)]
    pub duration_ms: Option<i32>,
    #[schema(required)]
    pub message: Option<String>,
    /// When the result was recorded.
    pub finished_at: DateTime<Utc>,
}

/// One test seen in the window of `GET /api/v1/tests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TestSummary {
    pub repo: String,
    pub scenario: String,
    pub name: String,
    /// Runs in the window (skipped ones left out).
    pub runs: i64,
    pub passed: i64,
    /// Failed and error runs.
    pub failed: i64,
    /// `passed / runs`, 0 to 1.
    pub pass_rate: f64,
    /// Passed and failed at one commit on one target in the last 30 days,
    /// or `flips` ≥ 3.
    pub flaky: bool,
    /// Pass↔fail changes in its last 20 runs on a branch and target (the
    /// most of its branches).
    pub flips: i32,
    /// The median of its last 20 passing runs (per branch and target, together).
    #[schema(required)]
    pub median_ms: Option<i64>,
    pub last_status: Status,
    #[schema(required)]
    pub last_failure: Option<LastFailure>,
}

/// Where a test last failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LastFailure {
    pub queue_id: String,
    #[schema(required)]
    pub message: Option<String>,
}

/// A test of a comparison, by scenario and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct TestRef {
    pub scenario: String,
    pub name: String,
}

/// A passing test above twice its baseline and its baseline plus 1 s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SlowerTest {
    pub scenario: String,
    pub name: String,
    /// Its baseline: the median of its last 20 passing runs before this one.
    pub base_ms: i64,
    pub now_ms: i64,
}

/// `GET /api/v1/queues/{id}/compare`: this queue against a base queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Comparison {
    /// The queue compared with; `null` when there is none (then every test
    /// is `added`).
    #[schema(required)]
    pub base: Option<String>,
    /// Failed here, passed in the base.
    pub new_failures: Vec<TestRef>,
    /// Passed here, failed in the base.
    pub fixed: Vec<TestRef>,
    pub still_failing: Vec<TestRef>,
    /// Failed here and known flaky.
    pub flaky: Vec<TestRef>,
    pub slower: Vec<SlowerTest>,
    /// Run here, not in the base.
    pub added: Vec<TestRef>,
    /// Run in the base, not here.
    pub removed: Vec<TestRef>,
}

/// `POST /api/v1/queues/{id}/rerun`'s optional body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunRequest {
    /// Only the tasks that did not pass, and in them only the tests that
    /// did not pass.
    #[serde(default)]
    pub failed_only: bool,
    /// Run the commit the queue ran (default); `false`: the branch's tip.
    #[serde(default = "yes")]
    pub same_commit: bool,
    /// How many queues to make, 1 to 20 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 20)]
    pub count: Option<u32>,
}

fn yes() -> bool {
    true
}

impl Default for RerunRequest {
    fn default() -> Self {
        Self {
            failed_only: false,
            same_commit: true,
            count: None,
        }
    }
}

/// The answer of `POST /api/v1/queues/{id}/rerun`: the new queue, or the
/// list of new queues when the body named `count`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Rerun {
    One(Box<crate::api::Queue>),
    Many(Vec<crate::api::Queue>),
}

/// A scenario of a submission: its path, or its path and the `<test>`
/// names to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ScenarioEntry {
    Path(String),
    Subset(ScenarioSubset),
}

/// `{"path", "only"}`: run only these tests of the scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSubset {
    pub path: String,
    #[schema(min_items = 1)]
    pub only: Vec<String>,
}

impl ScenarioEntry {
    pub fn path(&self) -> &str {
        match self {
            Self::Path(p) => p,
            Self::Subset(s) => &s.path,
        }
    }

    pub fn only(&self) -> Option<&[String]> {
        match self {
            Self::Path(_) => None,
            Self::Subset(s) => Some(&s.only),
        }
    }
}

impl From<String> for ScenarioEntry {
    fn from(path: String) -> Self {
        Self::Path(path)
    }
}

impl From<&str> for ScenarioEntry {
    fn from(path: &str) -> Self {
        Self::Path(path.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_entry_is_a_path_or_a_subset() {
        let entries: Vec<ScenarioEntry> =
            serde_json::from_str(r#"["a.xml", {"path": "b.xml", "only": ["unit"]}]"#).unwrap();
        assert_eq!(entries[0], ScenarioEntry::Path("a.xml".into()));
        assert_eq!(entries[1].path(), "b.xml");
        assert_eq!(entries[1].only(), Some(&["unit".to_owned()][..]));
        assert!(serde_json::from_str::<ScenarioEntry>(r#"{"path": "b.xml", "x": 1}"#).is_err());
        assert!(serde_json::from_str::<ScenarioEntry>("3").is_err());
    }

    #[test]
    fn rerun_defaults_to_the_same_commit() {
        let r: RerunRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(r, RerunRequest::default());
        assert!(r.same_commit);
        assert!(serde_json::from_str::<RerunRequest>(r#"{"bogus": 1}"#).is_err());
    }
}
