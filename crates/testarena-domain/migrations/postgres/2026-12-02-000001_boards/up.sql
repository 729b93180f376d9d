-- Real boards (DESIGN section 10): the boards a worker registers, their
-- lease, health and health-check spec; a queue's board requirement and
-- where it ran.

CREATE TABLE boards (
    id                TEXT    PRIMARY KEY NOT NULL,   -- same rules as queue ids
    worker_id         TEXT    NOT NULL,               -- the worker whose config has it
    target            TEXT    NOT NULL,
    tags              TEXT    NOT NULL DEFAULT '',    -- sorted, comma-separated
    serial            TEXT    NOT NULL,
    baud              INTEGER NOT NULL,
    -- The stored part of the status: 'idle', 'busy' (leased), 'offline'
    -- (serial device missing), 'bad' (last health check failed). The
    -- status shown also says 'offline' when the worker is not alive and
    -- 'maintenance' when the flag below is set.
    status            TEXT    NOT NULL DEFAULT 'idle'
                      CHECK (status IN ('idle', 'busy', 'offline', 'maintenance', 'bad')),
    health            TEXT    NOT NULL DEFAULT 'unknown'
                      CHECK (health IN ('unknown', 'good', 'bad')),
    queue_id          TEXT,                           -- the queue holding the lease
    leased_at         TIMESTAMP,
    heartbeat_at      TIMESTAMP NOT NULL,             -- last registration by its worker
    last_health_at    TIMESTAMP,
    last_health_queue TEXT,
    health_queue      TEXT,                           -- a health check waiting or running
    health_repo       TEXT,                           -- the `health` spec of its config
    health_branch     TEXT,
    health_scenario   TEXT,
    health_every_h    INTEGER,
    note              TEXT    NOT NULL DEFAULT '',
    maintenance       BOOLEAN NOT NULL DEFAULT false,
    flashes           INTEGER NOT NULL DEFAULT 0,
    faults            INTEGER NOT NULL DEFAULT 0,
    registered_at     TIMESTAMP NOT NULL
);
CREATE INDEX boards_worker ON boards(worker_id);

-- NULL: the queue runs in QEMU. 'any' or a board id.
ALTER TABLE queues ADD COLUMN board TEXT;
-- Tags every board that runs it must have: sorted, comma-separated; NULL: none.
ALTER TABLE queues ADD COLUMN board_tags TEXT;
-- Set at claim: 'qemu', or the id of the board it runs on.
ALTER TABLE queues ADD COLUMN ran_on TEXT;
CREATE INDEX queues_ran_on ON queues(ran_on, seq);
