-- TestArena's schema (DESIGN sections 3, 4, 6, 7).
-- Times are UTC, stored by Diesel as 'YYYY-MM-DD HH:MM:SS.ffffff' text.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT 0,
    disabled      BOOLEAN NOT NULL DEFAULT 0,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,   -- hex SHA-256 of the secret
    prefix       TEXT    NOT NULL,          -- the secret's first characters, for display
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- seq orders queues by creation: list pages walk it downwards, the claim
-- takes the lowest waiting seq of the highest priority.
CREATE TABLE queues (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    id            TEXT    NOT NULL UNIQUE,
    status        TEXT    NOT NULL DEFAULT 'waiting'
                  CHECK (status IN ('waiting', 'running', 'passed', 'failed', 'error', 'aborted')),
    status_reason TEXT,
    repo          TEXT    NOT NULL,
    branch        TEXT    NOT NULL,
    commit_sha    TEXT,
    target        TEXT    NOT NULL,
    owner         TEXT    NOT NULL,
    priority      INTEGER NOT NULL DEFAULT 0,
    timeout_s     INTEGER,
    created_at    TIMESTAMP NOT NULL,
    started_at    TIMESTAMP,
    finished_at   TIMESTAMP,
    worker_id     TEXT,
    abort_reason  TEXT,                     -- set when an abort was requested of a running queue
    pgid          INTEGER                   -- process group of the child running now, for recovery
);
CREATE INDEX queues_claim  ON queues(status, priority DESC, seq);
CREATE INDEX queues_owner  ON queues(owner, seq);
CREATE INDEX queues_branch ON queues(branch, seq);
CREATE INDEX queues_worker ON queues(worker_id, status);
CREATE INDEX queues_created ON queues(created_at);

CREATE TABLE tasks (
    id            TEXT    PRIMARY KEY NOT NULL,
    queue_id      TEXT    NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    scenario      TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'waiting'
                  CHECK (status IN ('waiting', 'running', 'passed', 'failed', 'error', 'aborted', 'skipped')),
    status_reason TEXT,
    passed        INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    started_at    TIMESTAMP,
    finished_at   TIMESTAMP,
    UNIQUE (queue_id, position)
);

CREATE TABLE test_cases (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    task_id     TEXT    NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('passed', 'failed', 'error', 'skipped')),
    duration_ms INTEGER,
    message     TEXT,
    UNIQUE (task_id, name)
);

CREATE TABLE workers (
    id         TEXT    PRIMARY KEY NOT NULL,
    slots      INTEGER NOT NULL,
    version    TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    started_at TIMESTAMP NOT NULL,
    last_seen  TIMESTAMP NOT NULL
);
