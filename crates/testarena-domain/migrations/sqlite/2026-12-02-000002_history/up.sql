-- History (DESIGN section 11, "Identity and history"): what the farm
-- learns from every run.
--
-- A test's identity is (repo, scenario, name). Each test case row carries
-- its identity and where it ran (branch, target, commit, ran_on) and when
-- it was recorded, copied from its task and queue when it is recorded, so
-- that a test's history is one range of one index instead of a join over
-- every task and queue of the farm. The copy is made by the triggers
-- below, whichever code records the case; a row that arrives with `repo`
-- set (a bulk load) keeps what it brings.
--
-- `test_series` keeps, per test and (branch, target), the last 20 verdicts
-- and the last 20 passing durations, kept up to date by the same triggers:
-- the tests list and the flaky rule read these few rows per test, never a
-- test's whole history; `test_days` counts runs per day for the tests list's window.

-- The `<test>` names a task runs (a JSON list), NULL: every test of the scenario.
ALTER TABLE tasks ADD COLUMN only TEXT;

ALTER TABLE test_cases ADD COLUMN repo TEXT;
ALTER TABLE test_cases ADD COLUMN scenario TEXT;
ALTER TABLE test_cases ADD COLUMN branch TEXT;
ALTER TABLE test_cases ADD COLUMN target TEXT;
ALTER TABLE test_cases ADD COLUMN commit_sha TEXT;
-- 'qemu' or a board id (the queue's ran_on; NULL there is 'qemu').
ALTER TABLE test_cases ADD COLUMN ran_on TEXT;
-- When the result was recorded (again, when it was replaced).
ALTER TABLE test_cases ADD COLUMN finished_at TIMESTAMP;

UPDATE test_cases SET
    repo       = (SELECT q.repo FROM tasks t JOIN queues q ON q.id = t.queue_id WHERE t.id = test_cases.task_id),
    scenario   = (SELECT t.scenario FROM tasks t WHERE t.id = test_cases.task_id),
    branch     = (SELECT q.branch FROM tasks t JOIN queues q ON q.id = t.queue_id WHERE t.id = test_cases.task_id),
    target     = (SELECT q.target FROM tasks t JOIN queues q ON q.id = t.queue_id WHERE t.id = test_cases.task_id),
    commit_sha = (SELECT q.commit_sha FROM tasks t JOIN queues q ON q.id = t.queue_id WHERE t.id = test_cases.task_id),
    ran_on     = (SELECT coalesce(q.ran_on, 'qemu') FROM tasks t JOIN queues q ON q.id = t.queue_id WHERE t.id = test_cases.task_id),
    finished_at = (SELECT coalesce(t.finished_at, q.finished_at, q.started_at, q.created_at)
                     FROM tasks t JOIN queues q ON q.id = t.queue_id WHERE t.id = test_cases.task_id);

-- A test's runs, newest first (rowid order within the key): the history
-- without a branch.
CREATE INDEX test_cases_test ON test_cases(repo, scenario, name);
-- A test's runs on one branch and target: the history with both, a run's
-- previous run (new_failure) and its baseline.
CREATE INDEX test_cases_series ON test_cases(repo, scenario, name, branch, target);
-- The runs of a test at one commit: passed and failed there (flaky).
CREATE INDEX test_cases_commit ON test_cases(repo, commit_sha, scenario, name);

CREATE TABLE test_series (
    repo        TEXT NOT NULL,
    scenario    TEXT NOT NULL,
    name        TEXT NOT NULL,
    branch      TEXT NOT NULL,
    target      TEXT NOT NULL,
    -- The last 20 verdicts, newest first: 'P' passed, 'F' failed or error (skipped runs left out).
    verdicts    TEXT NOT NULL DEFAULT '',
    -- The durations (ms) of the last 20 passing runs, newest first, comma-separated.
    durations   TEXT NOT NULL DEFAULT '',
    last_id     INTEGER NOT NULL,          -- the newest run's test_cases.id
    last_at     TIMESTAMP NOT NULL,
    last_status TEXT NOT NULL,
    last_fail_id INTEGER,                  -- the newest failed run's test_cases.id
    -- The last time this test both passed and failed at one commit on one
    -- target and ran_on (recorded on the series of the run that made it so).
    mixed_at    TIMESTAMP,
    PRIMARY KEY (repo, scenario, name, branch, target)
);
CREATE INDEX test_series_recent ON test_series(repo, last_at);

-- The series of every stored run, for the rows the backfill above filled.
INSERT INTO test_series (repo, scenario, name, branch, target, verdicts, durations,
                         last_id, last_at, last_status, last_fail_id, mixed_at)
SELECT k.repo, k.scenario, k.name, k.branch, k.target,
    coalesce((SELECT group_concat(v, '') FROM (
        SELECT CASE c.status WHEN 'passed' THEN 'P' ELSE 'F' END AS v FROM test_cases c
         WHERE c.repo = k.repo AND c.scenario = k.scenario AND c.name = k.name
           AND c.branch = k.branch AND c.target = k.target AND c.status != 'skipped'
         ORDER BY c.id DESC LIMIT 20)), ''),
    coalesce((SELECT group_concat(d, ',') FROM (
        SELECT c.duration_ms AS d FROM test_cases c
         WHERE c.repo = k.repo AND c.scenario = k.scenario AND c.name = k.name
           AND c.branch = k.branch AND c.target = k.target AND c.status = 'passed'
           AND c.duration_ms IS NOT NULL
         ORDER BY c.id DESC LIMIT 20)), ''),
    k.last_id,
    (SELECT c.finished_at FROM test_cases c WHERE c.id = k.last_id),
    (SELECT c.status FROM test_cases c WHERE c.id = k.last_id),
    k.last_fail_id,
    NULL
FROM (SELECT repo, scenario, name, branch, target, max(id) AS last_id,
             max(CASE WHEN status IN ('failed', 'error') THEN id END) AS last_fail_id
        FROM test_cases WHERE repo IS NOT NULL AND scenario IS NOT NULL
       GROUP BY repo, scenario, name, branch, target) k;

-- Runs per test, (branch, target) and day (UTC, from finished_at): what
-- the tests list counts over its window, a few rows per test and day
-- instead of every run. Kept by the same triggers.
CREATE TABLE test_days (
    repo     TEXT NOT NULL,
    day      TEXT NOT NULL,              -- 'YYYY-MM-DD'
    scenario TEXT NOT NULL,
    name     TEXT NOT NULL,
    branch   TEXT NOT NULL,
    target   TEXT NOT NULL,
    runs     INTEGER NOT NULL DEFAULT 0, -- skipped runs left out
    passed   INTEGER NOT NULL DEFAULT 0,
    failed   INTEGER NOT NULL DEFAULT 0, -- failed and error
    PRIMARY KEY (repo, day, scenario, name, branch, target)
);

INSERT INTO test_days (repo, day, scenario, name, branch, target, runs, passed, failed)
SELECT repo, substr(finished_at, 1, 10), scenario, name, branch, target,
       sum(status != 'skipped'), sum(status = 'passed'), sum(status IN ('failed', 'error'))
  FROM test_cases WHERE repo IS NOT NULL AND scenario IS NOT NULL AND finished_at IS NOT NULL
 GROUP BY repo, substr(finished_at, 1, 10), scenario, name, branch, target;

-- A recorded result: its identity from its task and queue (unless it came
-- with one), then its series.
CREATE TRIGGER test_cases_recorded AFTER INSERT ON test_cases
BEGIN
    UPDATE test_cases SET
        repo       = (SELECT q.repo FROM tasks t JOIN queues q ON q.id = t.queue_id WHERE t.id = NEW.task_id),
        scenario   = (SELECT t.scenario FROM tasks t WHERE t.id = NEW.task_id),
        branch     = (SELECT q.branch FROM tasks t JOIN queues q ON q.id = t.queue_id WHERE t.id = NEW.task_id),
        target     = (SELECT q.target FROM tasks t JOIN queues q ON q.id = t.queue_id WHERE t.id = NEW.task_id),
        commit_sha = (SELECT q.commit_sha FROM tasks t JOIN queues q ON q.id = t.queue_id WHERE t.id = NEW.task_id),
        ran_on     = (SELECT coalesce(q.ran_on, 'qemu') FROM tasks t JOIN queues q ON q.id = t.queue_id WHERE t.id = NEW.task_id),
        finished_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
    WHERE id = NEW.id AND NEW.repo IS NULL;
    INSERT INTO test_series (repo, scenario, name, branch, target, verdicts, durations,
                             last_id, last_at, last_status, last_fail_id, mixed_at)
    SELECT n.repo, n.scenario, n.name, n.branch, n.target,
        coalesce((SELECT group_concat(v, '') FROM (
            SELECT CASE c.status WHEN 'passed' THEN 'P' ELSE 'F' END AS v FROM test_cases c
             WHERE c.repo = n.repo AND c.scenario = n.scenario AND c.name = n.name
               AND c.branch = n.branch AND c.target = n.target AND c.status != 'skipped'
             ORDER BY c.id DESC LIMIT 20)), ''),
        coalesce((SELECT group_concat(d, ',') FROM (
            SELECT c.duration_ms AS d FROM test_cases c
             WHERE c.repo = n.repo AND c.scenario = n.scenario AND c.name = n.name
               AND c.branch = n.branch AND c.target = n.target AND c.status = 'passed'
               AND c.duration_ms IS NOT NULL
             ORDER BY c.id DESC LIMIT 20)), ''),
        n.id, n.finished_at, n.status,
        CASE WHEN n.status IN ('failed', 'error') THEN n.id END,
        CASE WHEN n.status != 'skipped' AND EXISTS (
            SELECT 1 FROM test_cases o
             WHERE o.repo = n.repo AND o.commit_sha = n.commit_sha AND o.scenario = n.scenario
               AND o.name = n.name AND o.target = n.target AND o.ran_on = n.ran_on
               AND o.id != n.id AND o.status != 'skipped'
               AND (o.status = 'passed') != (n.status = 'passed'))
        THEN n.finished_at END
    FROM test_cases n
    WHERE n.id = NEW.id AND n.repo IS NOT NULL AND n.scenario IS NOT NULL
    ON CONFLICT (repo, scenario, name, branch, target) DO UPDATE SET
        verdicts = excluded.verdicts,
        durations = excluded.durations,
        last_id = max(test_series.last_id, excluded.last_id),
        last_at = CASE WHEN excluded.last_id >= test_series.last_id THEN excluded.last_at ELSE test_series.last_at END,
        last_status = CASE WHEN excluded.last_id >= test_series.last_id THEN excluded.last_status ELSE test_series.last_status END,
        last_fail_id = coalesce(max(test_series.last_fail_id, excluded.last_fail_id), test_series.last_fail_id, excluded.last_fail_id),
        mixed_at = coalesce(excluded.mixed_at, test_series.mixed_at);
    INSERT INTO test_days (repo, day, scenario, name, branch, target, runs, passed, failed)
    SELECT n.repo, substr(n.finished_at, 1, 10), n.scenario, n.name, n.branch, n.target,
           n.status != 'skipped', n.status = 'passed', n.status IN ('failed', 'error')
      FROM test_cases n
     WHERE n.id = NEW.id AND n.repo IS NOT NULL AND n.scenario IS NOT NULL AND n.finished_at IS NOT NULL
    ON CONFLICT (repo, day, scenario, name, branch, target) DO UPDATE SET
        runs = runs + excluded.runs, passed = passed + excluded.passed, failed = failed + excluded.failed;
END;

-- A result recorded again (same task and name): it is the newest run now.
CREATE TRIGGER test_cases_replaced AFTER UPDATE OF status, duration_ms, message ON test_cases
BEGIN
    UPDATE test_days SET
        runs = runs - (OLD.status != 'skipped'),
        passed = passed - (OLD.status = 'passed'),
        failed = failed - (OLD.status IN ('failed', 'error'))
     WHERE repo = OLD.repo AND day = substr(OLD.finished_at, 1, 10) AND scenario = OLD.scenario
       AND name = OLD.name AND branch = OLD.branch AND target = OLD.target;
    INSERT INTO test_days (repo, day, scenario, name, branch, target, runs, passed, failed)
    SELECT NEW.repo, strftime('%Y-%m-%d', 'now'), NEW.scenario, NEW.name, NEW.branch, NEW.target,
           NEW.status != 'skipped', NEW.status = 'passed', NEW.status IN ('failed', 'error')
     WHERE NEW.repo IS NOT NULL AND NEW.scenario IS NOT NULL
    ON CONFLICT (repo, day, scenario, name, branch, target) DO UPDATE SET
        runs = runs + excluded.runs, passed = passed + excluded.passed, failed = failed + excluded.failed;
    UPDATE test_cases SET finished_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = NEW.id;
    UPDATE test_series SET
        verdicts = coalesce((SELECT group_concat(v, '') FROM (
            SELECT CASE c.status WHEN 'passed' THEN 'P' ELSE 'F' END AS v FROM test_cases c
             WHERE c.repo = NEW.repo AND c.scenario = NEW.scenario AND c.name = NEW.name
               AND c.branch = NEW.branch AND c.target = NEW.target AND c.status != 'skipped'
             ORDER BY c.id DESC LIMIT 20)), ''),
        durations = coalesce((SELECT group_concat(d, ',') FROM (
            SELECT c.duration_ms AS d FROM test_cases c
             WHERE c.repo = NEW.repo AND c.scenario = NEW.scenario AND c.name = NEW.name
               AND c.branch = NEW.branch AND c.target = NEW.target AND c.status = 'passed'
               AND c.duration_ms IS NOT NULL
             ORDER BY c.id DESC LIMIT 20)), ''),
        last_status = CASE WHEN last_id = NEW.id THEN NEW.status ELSE last_status END,
        last_fail_id = CASE WHEN NEW.status IN ('failed', 'error') THEN max(coalesce(last_fail_id, 0), NEW.id)
                            WHEN last_fail_id = NEW.id THEN NULL ELSE last_fail_id END
    WHERE repo = NEW.repo AND scenario = NEW.scenario AND name = NEW.name
      AND branch = NEW.branch AND target = NEW.target;
END;

-- A deleted run (its queue deleted): the series forgets it; a series with
-- no run left goes.
CREATE TRIGGER test_cases_deleted AFTER DELETE ON test_cases
BEGIN
    UPDATE test_days SET
        runs = runs - (OLD.status != 'skipped'),
        passed = passed - (OLD.status = 'passed'),
        failed = failed - (OLD.status IN ('failed', 'error'))
     WHERE repo = OLD.repo AND day = substr(OLD.finished_at, 1, 10) AND scenario = OLD.scenario
       AND name = OLD.name AND branch = OLD.branch AND target = OLD.target;
    DELETE FROM test_days
     WHERE repo = OLD.repo AND day = substr(OLD.finished_at, 1, 10) AND scenario = OLD.scenario
       AND name = OLD.name AND branch = OLD.branch AND target = OLD.target
       AND runs <= 0 AND passed <= 0 AND failed <= 0;
    DELETE FROM test_series
     WHERE repo = OLD.repo AND scenario = OLD.scenario AND name = OLD.name
       AND branch = OLD.branch AND target = OLD.target
       AND NOT EXISTS (SELECT 1 FROM test_cases c
                        WHERE c.repo = OLD.repo AND c.scenario = OLD.scenario AND c.name = OLD.name
                          AND c.branch = OLD.branch AND c.target = OLD.target);
    UPDATE test_series SET
        verdicts = coalesce((SELECT group_concat(v, '') FROM (
            SELECT CASE c.status WHEN 'passed' THEN 'P' ELSE 'F' END AS v FROM test_cases c
             WHERE c.repo = OLD.repo AND c.scenario = OLD.scenario AND c.name = OLD.name
               AND c.branch = OLD.branch AND c.target = OLD.target AND c.status != 'skipped'
             ORDER BY c.id DESC LIMIT 20)), ''),
        durations = coalesce((SELECT group_concat(d, ',') FROM (
            SELECT c.duration_ms AS d FROM test_cases c
             WHERE c.repo = OLD.repo AND c.scenario = OLD.scenario AND c.name = OLD.name
               AND c.branch = OLD.branch AND c.target = OLD.target AND c.status = 'passed'
               AND c.duration_ms IS NOT NULL
             ORDER BY c.id DESC LIMIT 20)), ''),
        last_id = coalesce((SELECT max(c.id) FROM test_cases c
             WHERE c.repo = OLD.repo AND c.scenario = OLD.scenario AND c.name = OLD.name
               AND c.branch = OLD.branch AND c.target = OLD.target), last_id),
        last_at = coalesce((SELECT c.finished_at FROM test_cases c WHERE c.id = (SELECT max(m.id) FROM test_cases m
             WHERE m.repo = OLD.repo AND m.scenario = OLD.scenario AND m.name = OLD.name
               AND m.branch = OLD.branch AND m.target = OLD.target)), last_at),
        last_status = coalesce((SELECT c.status FROM test_cases c WHERE c.id = (SELECT max(m.id) FROM test_cases m
             WHERE m.repo = OLD.repo AND m.scenario = OLD.scenario AND m.name = OLD.name
               AND m.branch = OLD.branch AND m.target = OLD.target)), last_status),
        last_fail_id = CASE WHEN last_fail_id = OLD.id THEN NULL ELSE last_fail_id END
    WHERE repo = OLD.repo AND scenario = OLD.scenario AND name = OLD.name
      AND branch = OLD.branch AND target = OLD.target;
END;
