//! `.testarena.toml`: what a repository asks to run when it is pushed
//! (DESIGN section 12). The app reads it from the pushed commit through the
//! git mirror, as it reads scenario files, so each commit says for itself
//! what tests it.
//!
//! ```toml
//! [[push]]
//! branches = ["main", "release/*"]     # glob patterns
//! scenarios = ["scenarios/smoke.xml"]
//! target = "esp32"                     # optional
//! board = "any"                        # optional, as in a submission
//! priority = 0                         # optional
//! ```
//!
//! Every `[[push]]` entry whose `branches` match the pushed branch starts
//! one queue. Globs are `globset`'s: `*` and `?` never match `/`, `**`
//! does, `{a,b}` and `[...]` work as in a shell.

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;

use crate::validate;

/// The file's path at the repository root.
pub const FILE: &str = ".testarena.toml";
/// The largest file read; a bigger one is an error.
pub const MAX_BYTES: u64 = 64 * 1024;

/// Why a `.testarena.toml` cannot be used, in words that name the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{FILE}: {0}")]
pub struct RepoConfigError(pub String);

/// One `[[push]]` entry, checked.
#[derive(Debug, Clone)]
pub struct PushEntry {
    /// The entry's index in the file, from 0.
    pub index: usize,
    pub branches: Vec<String>,
    matchers: Vec<GlobMatcher>,
    pub scenarios: Vec<String>,
    pub target: Option<String>,
    pub board: Option<String>,
    pub priority: Option<i32>,
}

impl PushEntry {
    /// Whether one of the entry's globs matches `branch`.
    pub fn matches(&self, branch: &str) -> bool {
        self.matchers.iter().any(|m| m.is_match(branch))
    }
}

/// A parsed and checked `.testarena.toml`.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    pub push: Vec<PushEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    push: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    branches: Vec<String>,
    scenarios: Vec<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    board: Option<String>,
    #[serde(default)]
    priority: Option<i32>,
}

impl RepoConfig {
    /// Parses and checks the file's bytes: TOML, no unknown keys, at least
    /// one branch glob and one scenario per entry, each glob valid and each
    /// scenario a valid path (whether it exists and parses is checked at
    /// the commit, like a submission's).
    pub fn parse(bytes: &[u8]) -> Result<Self, RepoConfigError> {
        let err = |m: String| RepoConfigError(m);
        if bytes.len() as u64 > MAX_BYTES {
            return Err(err(format!("over {MAX_BYTES} bytes")));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| err("not UTF-8".into()))?;
        let file: File =
            toml::from_str(text).map_err(|e| err(e.to_string().trim_end().replace('\n', " ")))?;
        let mut push = Vec::with_capacity(file.push.len());
        for (index, raw) in file.push.into_iter().enumerate() {
            let at = |k: &str| format!("push[{index}].{k}");
            if raw.branches.is_empty() {
                return Err(err(format!(
                    "{}: give at least one branch glob",
                    at("branches")
                )));
            }
            if raw.scenarios.is_empty() {
                return Err(err(format!(
                    "{}: give at least one scenario",
                    at("scenarios")
                )));
            }
            let mut matchers = Vec::with_capacity(raw.branches.len());
            for (i, glob) in raw.branches.iter().enumerate() {
                let m = GlobBuilder::new(glob)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| err(format!("{}[{i}]: {e}", at("branches"))))?;
                matchers.push(m.compile_matcher());
            }
            for (i, path) in raw.scenarios.iter().enumerate() {
                validate::scenario_path(&format!("{}[{i}]", at("scenarios")), path)
                    .map_err(|e| err(e.to_string()))?;
            }
            push.push(PushEntry {
                index,
                branches: raw.branches,
                matchers,
                scenarios: raw.scenarios,
                target: raw.target,
                board: raw.board,
                priority: raw.priority,
            });
        }
        Ok(Self { push })
    }

    /// The entries whose globs match `branch`, in file order.
    pub fn matching<'a>(&'a self, branch: &'a str) -> impl Iterator<Item = &'a PushEntry> + 'a {
        self.push.iter().filter(move |e| e.matches(branch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RepoConfig, RepoConfigError> {
        RepoConfig::parse(text.as_bytes())
    }

    #[test]
    fn globs_match_branches_as_documented() {
        let c = parse(
            r#"
            [[push]]
            branches = ["main", "release/*"]
            scenarios = ["scenarios/smoke.xml", "scenarios/unit.xml"]
            target = "esp32"
            board = "any"
            priority = 5
            [[push]]
            branches = ["feature/**"]
            scenarios = ["scenarios/smoke.xml"]
            "#,
        )
        .unwrap();
        let hits = |b: &str| c.matching(b).map(|e| e.index).collect::<Vec<_>>();
        assert_eq!(hits("main"), [0]);
        assert_eq!(hits("release/1.2"), [0]);
        assert!(hits("release/1.2/hotfix").is_empty(), "* does not cross /");
        assert!(hits("mainline").is_empty());
        assert!(hits("dev").is_empty());
        assert_eq!(hits("feature/a/b"), [1]);
        let e = &c.push[0];
        assert_eq!(
            (e.target.as_deref(), e.board.as_deref(), e.priority),
            (Some("esp32"), Some("any"), Some(5))
        );
    }

    #[test]
    fn an_empty_file_asks_for_nothing() {
        assert!(parse("").unwrap().matching("main").next().is_none());
    }

    #[test]
    fn bad_files_say_where() {
        for (text, says) in [
            ("[[push]\n", "TOML"),
            ("[[push]]\nbranches = [\"main\"]\n", "scenarios"),
            (
                "[[push]]\nbranches = []\nscenarios = [\"a.xml\"]\n",
                "push[0].branches",
            ),
            (
                "[[push]]\nbranches = [\"[\"]\nscenarios = [\"a.xml\"]\n",
                "push[0].branches[0]",
            ),
            (
                "[[push]]\nbranches = [\"main\"]\nscenarios = [\"../etc/passwd\"]\n",
                "push[0].scenarios[0]",
            ),
            (
                "[[push]]\nbranches = [\"main\"]\nscenarios = [\"a.xml\"]\nwhen = 1\n",
                "when",
            ),
            ("[[pull]]\n", "pull"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with(".testarena.toml: "), "{e}");
            if says != "TOML" {
                assert!(e.contains(says), "{text:?}: {e}");
            }
        }
        assert!(RepoConfig::parse(&[0xff, 0xfe]).is_err());
        let big = "#".repeat(MAX_BYTES as usize + 1);
        assert!(parse(&big).unwrap_err().to_string().contains("over"));
    }
}
