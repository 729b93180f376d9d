-- History (DESIGN section 11, "Identity and history"): what the farm
-- learns from every run. PostgreSQL's version of migrations/sqlite's: the
-- same columns and tables, and triggers in PL/pgSQL that leave the same
-- rows behind.
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
--
-- Times the triggers write are the server's clock in UTC,
-- `now() AT TIME ZONE 'UTC'` (the transaction's start).
--
-- SQLite runs one writer at a time; here two workers may record runs of
-- one test at once, and each would rebuild the series from a snapshot
-- without the other's run. So every trigger that rebuilds a series first
-- takes a transaction lock on its scenario (test_history_lock), and what it
-- reads after that includes every run committed before.

-- The `<test>` names a task runs (a JSON list), NULL: every test of the scenario.
-- "only" is a reserved word in PostgreSQL: quote it in raw SQL.
ALTER TABLE tasks ADD COLUMN "only" TEXT;

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

-- A test's runs, newest first (id order within the key): the history
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

-- A series' `verdicts` and `durations` from its runs (SQLite's migration
-- spells these subqueries out in every trigger).
CREATE FUNCTION test_series_verdicts(k_repo TEXT, k_scenario TEXT, k_name TEXT,
                                     k_branch TEXT, k_target TEXT) RETURNS TEXT
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(v, '' ORDER BY id DESC), '') FROM (
        SELECT c.id, CASE c.status WHEN 'passed' THEN 'P' ELSE 'F' END AS v FROM test_cases c
         WHERE c.repo = k_repo AND c.scenario = k_scenario AND c.name = k_name
           AND c.branch = k_branch AND c.target = k_target AND c.status <> 'skipped'
         ORDER BY c.id DESC LIMIT 20) last
$$;
CREATE FUNCTION test_series_durations(k_repo TEXT, k_scenario TEXT, k_name TEXT,
                                      k_branch TEXT, k_target TEXT) RETURNS TEXT
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(d::text, ',' ORDER BY id DESC), '') FROM (
        SELECT c.id, c.duration_ms AS d FROM test_cases c
         WHERE c.repo = k_repo AND c.scenario = k_scenario AND c.name = k_name
           AND c.branch = k_branch AND c.target = k_target AND c.status = 'passed'
           AND c.duration_ms IS NOT NULL
         ORDER BY c.id DESC LIMIT 20) last
$$;

-- Serializes the triggers' work on the tests of one scenario until the
-- transaction ends (per scenario, not per test, so that a bulk load takes
-- few locks); the first key says whose advisory lock it is.
CREATE FUNCTION test_history_lock(k_repo TEXT, k_scenario TEXT) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(1413829460, hashtext(k_repo || '/' || k_scenario))
$$;

-- The series of every stored run, for the rows the backfill above filled.
INSERT INTO test_series (repo, scenario, name, branch, target, verdicts, durations,
                         last_id, last_at, last_status, last_fail_id, mixed_at)
SELECT k.repo, k.scenario, k.name, k.branch, k.target,
    test_series_verdicts(k.repo, k.scenario, k.name, k.branch, k.target),
    test_series_durations(k.repo, k.scenario, k.name, k.branch, k.target),
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
SELECT repo, to_char(finished_at, 'YYYY-MM-DD'), scenario, name, branch, target,
       sum((status <> 'skipped')::int), sum((status = 'passed')::int),
       sum((status IN ('failed', 'error'))::int)
  FROM test_cases WHERE repo IS NOT NULL AND scenario IS NOT NULL AND finished_at IS NOT NULL
 GROUP BY repo, to_char(finished_at, 'YYYY-MM-DD'), scenario, name, branch, target;

-- A recorded result: its identity from its task and queue (unless it came
-- with one) before it is stored...
CREATE FUNCTION test_cases_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.repo IS NULL THEN
        SELECT q.repo, t.scenario, q.branch, q.target, q.commit_sha,
               CASE WHEN q.id IS NOT NULL THEN coalesce(q.ran_on, 'qemu') END
          INTO NEW.repo, NEW.scenario, NEW.branch, NEW.target, NEW.commit_sha, NEW.ran_on
          FROM tasks t LEFT JOIN queues q ON q.id = t.queue_id
         WHERE t.id = NEW.task_id;
        NEW.finished_at := now() AT TIME ZONE 'UTC';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER test_cases_identity BEFORE INSERT ON test_cases
FOR EACH ROW EXECUTE FUNCTION test_cases_identity();

-- ...then its series and day.
CREATE FUNCTION test_cases_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    mine xid;
BEGIN
    IF NEW.repo IS NULL OR NEW.scenario IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM test_history_lock(NEW.repo, NEW.scenario);
    SELECT xmin INTO mine FROM test_cases WHERE id = NEW.id;
    INSERT INTO test_series (repo, scenario, name, branch, target, verdicts, durations,
                             last_id, last_at, last_status, last_fail_id, mixed_at)
    VALUES (NEW.repo, NEW.scenario, NEW.name, NEW.branch, NEW.target,
        test_series_verdicts(NEW.repo, NEW.scenario, NEW.name, NEW.branch, NEW.target),
        test_series_durations(NEW.repo, NEW.scenario, NEW.name, NEW.branch, NEW.target),
        NEW.id, NEW.finished_at, NEW.status,
        CASE WHEN NEW.status IN ('failed', 'error') THEN NEW.id END,
        -- The runs recorded before this one. An AFTER row trigger here runs
        -- once its whole statement is done (SQLite's, after each row), so
        -- the later rows of a bulk insert (this transaction's, higher ids)
        -- are visible already and left out; another transaction's rows are
        -- committed ones, earlier whatever their ids.
        CASE WHEN NEW.status <> 'skipped' AND EXISTS (
            SELECT 1 FROM test_cases o
             WHERE o.repo = NEW.repo AND o.commit_sha = NEW.commit_sha AND o.scenario = NEW.scenario
               AND o.name = NEW.name AND o.target = NEW.target AND o.ran_on = NEW.ran_on
               AND o.id <> NEW.id AND (o.id < NEW.id OR o.xmin <> mine) AND o.status <> 'skipped'
               AND (o.status = 'passed') <> (NEW.status = 'passed'))
        THEN NEW.finished_at END)
    ON CONFLICT (repo, scenario, name, branch, target) DO UPDATE SET
        verdicts = excluded.verdicts,
        durations = excluded.durations,
        last_id = GREATEST(test_series.last_id, excluded.last_id),
        last_at = CASE WHEN excluded.last_id >= test_series.last_id THEN excluded.last_at ELSE test_series.last_at END,
        last_status = CASE WHEN excluded.last_id >= test_series.last_id THEN excluded.last_status ELSE test_series.last_status END,
        last_fail_id = GREATEST(test_series.last_fail_id, excluded.last_fail_id),
        mixed_at = coalesce(excluded.mixed_at, test_series.mixed_at);
    IF NEW.finished_at IS NOT NULL THEN
        INSERT INTO test_days (repo, day, scenario, name, branch, target, runs, passed, failed)
        VALUES (NEW.repo, to_char(NEW.finished_at, 'YYYY-MM-DD'), NEW.scenario, NEW.name,
                NEW.branch, NEW.target, (NEW.status <> 'skipped')::int,
                (NEW.status = 'passed')::int, (NEW.status IN ('failed', 'error'))::int)
        ON CONFLICT (repo, day, scenario, name, branch, target) DO UPDATE SET
            runs = test_days.runs + excluded.runs,
            passed = test_days.passed + excluded.passed,
            failed = test_days.failed + excluded.failed;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER test_cases_recorded AFTER INSERT ON test_cases
FOR EACH ROW EXECUTE FUNCTION test_cases_recorded();

-- A result recorded again (same task and name): it is the newest run now,
-- recorded now...
CREATE FUNCTION test_cases_replaced_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.finished_at := now() AT TIME ZONE 'UTC';
    RETURN NEW;
END;
$$;
CREATE TRIGGER test_cases_replaced_at BEFORE UPDATE OF status, duration_ms, message ON test_cases
FOR EACH ROW EXECUTE FUNCTION test_cases_replaced_at();

-- ...and counted today instead of on its first day.
CREATE FUNCTION test_cases_replaced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE test_days SET
        runs = runs - (OLD.status <> 'skipped')::int,
        passed = passed - (OLD.status = 'passed')::int,
        failed = failed - (OLD.status IN ('failed', 'error'))::int
     WHERE repo = OLD.repo AND day = to_char(OLD.finished_at, 'YYYY-MM-DD') AND scenario = OLD.scenario
       AND name = OLD.name AND branch = OLD.branch AND target = OLD.target;
    IF NEW.repo IS NULL OR NEW.scenario IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM test_history_lock(NEW.repo, NEW.scenario);
    INSERT INTO test_days (repo, day, scenario, name, branch, target, runs, passed, failed)
    VALUES (NEW.repo, to_char(NEW.finished_at, 'YYYY-MM-DD'), NEW.scenario, NEW.name,
            NEW.branch, NEW.target, (NEW.status <> 'skipped')::int,
            (NEW.status = 'passed')::int, (NEW.status IN ('failed', 'error'))::int)
    ON CONFLICT (repo, day, scenario, name, branch, target) DO UPDATE SET
        runs = test_days.runs + excluded.runs,
        passed = test_days.passed + excluded.passed,
        failed = test_days.failed + excluded.failed;
    UPDATE test_series SET
        verdicts = test_series_verdicts(NEW.repo, NEW.scenario, NEW.name, NEW.branch, NEW.target),
        durations = test_series_durations(NEW.repo, NEW.scenario, NEW.name, NEW.branch, NEW.target),
        last_status = CASE WHEN last_id = NEW.id THEN NEW.status ELSE last_status END,
        last_fail_id = CASE WHEN NEW.status IN ('failed', 'error') THEN GREATEST(coalesce(last_fail_id, 0), NEW.id)
                            WHEN last_fail_id = NEW.id THEN NULL ELSE last_fail_id END
    WHERE repo = NEW.repo AND scenario = NEW.scenario AND name = NEW.name
      AND branch = NEW.branch AND target = NEW.target;
    RETURN NULL;
END;
$$;
CREATE TRIGGER test_cases_replaced AFTER UPDATE OF status, duration_ms, message ON test_cases
FOR EACH ROW EXECUTE FUNCTION test_cases_replaced();

-- A deleted run (its queue deleted): the series forgets it; a series with
-- no run left goes.
CREATE FUNCTION test_cases_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    newest_id INTEGER;
    newest_at TIMESTAMP;
    newest_status TEXT;
BEGIN
    PERFORM test_history_lock(OLD.repo, OLD.scenario);
    UPDATE test_days SET
        runs = runs - (OLD.status <> 'skipped')::int,
        passed = passed - (OLD.status = 'passed')::int,
        failed = failed - (OLD.status IN ('failed', 'error'))::int
     WHERE repo = OLD.repo AND day = to_char(OLD.finished_at, 'YYYY-MM-DD') AND scenario = OLD.scenario
       AND name = OLD.name AND branch = OLD.branch AND target = OLD.target;
    DELETE FROM test_days
     WHERE repo = OLD.repo AND day = to_char(OLD.finished_at, 'YYYY-MM-DD') AND scenario = OLD.scenario
       AND name = OLD.name AND branch = OLD.branch AND target = OLD.target
       AND runs <= 0 AND passed <= 0 AND failed <= 0;
    SELECT c.id, c.finished_at, c.status INTO newest_id, newest_at, newest_status
      FROM test_cases c
     WHERE c.repo = OLD.repo AND c.scenario = OLD.scenario AND c.name = OLD.name
       AND c.branch = OLD.branch AND c.target = OLD.target
     ORDER BY c.id DESC LIMIT 1;
    IF newest_id IS NULL THEN
        DELETE FROM test_series
         WHERE repo = OLD.repo AND scenario = OLD.scenario AND name = OLD.name
           AND branch = OLD.branch AND target = OLD.target;
        RETURN NULL;
    END IF;
    UPDATE test_series SET
        verdicts = test_series_verdicts(OLD.repo, OLD.scenario, OLD.name, OLD.branch, OLD.target),
        durations = test_series_durations(OLD.repo, OLD.scenario, OLD.name, OLD.branch, OLD.target),
        last_id = newest_id,
        last_at = coalesce(newest_at, last_at),
        last_status = newest_status,
        last_fail_id = CASE WHEN last_fail_id = OLD.id THEN NULL ELSE last_fail_id END
    WHERE repo = OLD.repo AND scenario = OLD.scenario AND name = OLD.name
      AND branch = OLD.branch AND target = OLD.target;
    RETURN NULL;
END;
$$;
CREATE TRIGGER test_cases_deleted AFTER DELETE ON test_cases
FOR EACH ROW EXECUTE FUNCTION test_cases_deleted();
