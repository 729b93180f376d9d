-- Logs in the database (DESIGN section 13): on PostgreSQL the worker
-- appends every byte of every file of a queue's directory here as it
-- writes it, and the app serves logs, live events and JUnit from these
-- rows, so app and workers share no filesystem. A SQLite farm keeps its
-- logs as files (the table stays empty there; `copy-database` fills the
-- PostgreSQL one from those files).
CREATE TABLE log_chunks (
    queue_id TEXT    NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
    path     TEXT    NOT NULL,   -- relative to the queue's directory: build.log, <task>/console.log, junit.xml
    start    BIGINT  NOT NULL,   -- the chunk's first byte's offset in the file
    len      BIGINT  NOT NULL,   -- its length in bytes (at most 64 KiB)
    data     BYTEA   NOT NULL,
    PRIMARY KEY (queue_id, path, start)
);
