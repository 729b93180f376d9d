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

-- Wake-ups (PostgreSQL only): every change of a queue that a worker or a
-- live reader waits for is a notification on channel `testarena`, sent at
-- commit: a new queue (a worker claims it), an abort asked of a running
-- one (its worker stops it), a status change, a deletion. Payload
-- `queue:<id>`; new log chunks send `log:<id>` (store::logs).
CREATE FUNCTION testarena_queue_notify() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('testarena', 'queue:' || OLD.id);
        RETURN OLD;
    END IF;
    IF TG_OP = 'INSERT'
       OR NEW.status IS DISTINCT FROM OLD.status
       OR NEW.abort_reason IS DISTINCT FROM OLD.abort_reason THEN
        PERFORM pg_notify('testarena', 'queue:' || NEW.id);
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER queues_notify AFTER INSERT OR UPDATE OR DELETE ON queues
    FOR EACH ROW EXECUTE FUNCTION testarena_queue_notify();
