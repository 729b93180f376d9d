-- Attempts (DESIGN section 11, "Attempts"): a queue that ends `error` for a
-- farm reason goes back to `waiting` with `attempt` + 1; each earlier
-- attempt is one row of `attempts`, with its tasks' results as they were.
-- `no_cache` (section 11, "Build cache"): build even when the cache holds
-- this queue's build.

ALTER TABLE queues ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE queues ADD COLUMN no_cache BOOLEAN NOT NULL DEFAULT 0;

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    queue_id    TEXT    NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    worker      TEXT,
    ran_on      TEXT,                       -- NULL: QEMU (the board's name otherwise)
    started_at  TIMESTAMP,
    finished_at TIMESTAMP NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('passed', 'failed', 'error', 'aborted')),
    reason      TEXT,
    results     TEXT    NOT NULL DEFAULT '[]', -- JSON: the attempt's tasks and test cases
    UNIQUE (queue_id, attempt)
);
