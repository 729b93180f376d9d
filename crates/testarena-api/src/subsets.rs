//! Scenario subsets (DESIGN section 11, "Rerun and subsets"): the checks
//! of a submission's `{"path", "only"}` entries, and a task as such an
//! entry again (for reruns). Used by the submission checks and the rerun
//! service; imports neither.

use testarena_domain::api::{ScenarioEntry, ScenarioSubset, Task};
use testarena_domain::models::NewTask;
use testarena_domain::scenario::Scenario;

use crate::error::ApiError;

/// The most names one `only` list may hold.
pub const MAX_ONLY: usize = 1000;

/// The shape checks of a scenario's `only` (no I/O): at least one name,
/// none empty, no duplicates.
pub fn check_only_fields(field: &str, only: Option<&[String]>) -> Result<(), ApiError> {
    let Some(names) = only else {
        return Ok(());
    };
    if names.is_empty() {
        return Err(ApiError::validation(field, "give at least one test name"));
    }
    if names.len() > MAX_ONLY {
        return Err(ApiError::validation(
            field,
            format!("at most {MAX_ONLY} test names"),
        ));
    }
    for (i, name) in names.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(ApiError::validation(field, "a test name is empty"));
        }
        if names[..i].contains(name) {
            return Err(ApiError::validation(
                field,
                format!("test {name:?} is named twice"),
            ));
        }
    }
    Ok(())
}

/// Every name of a task's `only` is a `<test>` of its scenario as parsed
/// at the pinned commit; else 422 naming the first that is not.
pub fn check_only_names(field: &str, task: &NewTask, parsed: &Scenario) -> Result<(), ApiError> {
    for name in task.only.iter().flatten() {
        if !parsed.tests.iter().any(|t| &t.name == name) {
            return Err(ApiError::validation(
                format!("{field}.only"),
                format!("{} has no test {name:?}", task.scenario),
            ));
        }
    }
    Ok(())
}

/// A task as a submission's scenario entry, its subset kept.
pub fn entry_of(task: &Task) -> ScenarioEntry {
    match &task.only {
        Some(only) => ScenarioEntry::Subset(ScenarioSubset {
            path: task.scenario.clone(),
            only: only.clone(),
        }),
        None => ScenarioEntry::Path(task.scenario.clone()),
    }
}
