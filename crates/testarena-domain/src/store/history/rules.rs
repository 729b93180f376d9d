//! The rules of history (DESIGN section 11, "Flaky, new, slower"), as
//! pure functions over what the store read: verdict strings, durations,
//! times. No SQL here.

use chrono::NaiveDateTime;

/// How far back a pass and a fail at one commit make a test flaky.
pub const FLAKY_WINDOW_DAYS: i64 = 30;
/// Flips among a branch's last 20 runs that make a test flaky.
pub const FLAKY_FLIPS: i32 = 3;

/// Pass↔fail changes in a series' verdicts (`P`/`F`, newest first; the
/// store keeps the last 20).
pub fn flips(verdicts: &str) -> i32 {
    let n = verdicts
        .as_bytes()
        .windows(2)
        .filter(|w| w[0] != w[1])
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Flaky: a pass and a fail at one commit, target and `ran_on` since
/// [`FLAKY_WINDOW_DAYS`] before `now`, or at least [`FLAKY_FLIPS`] flips.
pub fn is_flaky(mixed_at: Option<NaiveDateTime>, flips: i32, now: NaiveDateTime) -> bool {
    let since = now - chrono::Duration::days(FLAKY_WINDOW_DAYS);
    flips >= FLAKY_FLIPS || mixed_at.is_some_and(|at| at >= since)
}

/// The durations of a comma-separated list (what the store keeps); what
/// does not parse is left out.
pub fn durations(csv: &str) -> impl Iterator<Item = i64> + '_ {
    csv.split(',').filter_map(|d| d.trim().parse().ok())
}

/// The median (the mean of the middle two of an even count), `None` for none.
pub fn median(mut values: Vec<i64>) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2
    })
}

/// A passing run is slower when above both twice its baseline and its
/// baseline plus one second.
pub fn is_slower(now_ms: i64, baseline_ms: i64) -> bool {
    now_ms > 2 * baseline_ms && now_ms > baseline_ms + 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_count_changes_between_neighbours() {
        assert_eq!(flips(""), 0);
        assert_eq!(flips("P"), 0);
        assert_eq!(flips("PPPP"), 0);
        assert_eq!(flips("PF"), 1);
        assert_eq!(flips("PFPF"), 3);
        assert_eq!(flips("FFPP"), 1);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5]), Some(5));
        assert_eq!(median(vec![9, 1, 5]), Some(5));
        assert_eq!(median(vec![4, 1, 3, 2]), Some(2));
        assert_eq!(durations("10,x,30").collect::<Vec<_>>(), [10, 30]);
    }

    #[test]
    fn slower_needs_both_twice_and_a_second_more() {
        assert!(!is_slower(1500, 700), "twice but not a second more");
        assert!(!is_slower(2500, 2000), "a second more would be 3000");
        assert!(is_slower(2101, 1000));
        assert!(!is_slower(2000, 1000), "exactly twice is not above");
        assert!(is_slower(5000, 2000));
    }

    #[test]
    fn flaky_by_flips_or_a_recent_mixed_commit() {
        let now = chrono::DateTime::from_timestamp(2_000_000_000, 0)
            .unwrap()
            .naive_utc();
        assert!(!is_flaky(None, 2, now));
        assert!(is_flaky(None, 3, now));
        assert!(is_flaky(Some(now - chrono::Duration::days(29)), 0, now));
        assert!(!is_flaky(Some(now - chrono::Duration::days(31)), 0, now));
    }
}
