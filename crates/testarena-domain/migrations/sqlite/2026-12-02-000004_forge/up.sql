-- Forges (DESIGN section 12): who pushed, the forge hooks received, and
-- every commit status and notification to send, as rows the app's sender
-- works through (so none is lost across a restart).

-- The forge user whose push made the queue (its owner is then `testarena`).
ALTER TABLE queues ADD COLUMN triggered_by TEXT;

-- Hooks received, for idempotent redelivery: one row per forge delivery id,
-- written in the same transaction as the queues it made.
CREATE TABLE hook_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    repo        TEXT    NOT NULL,
    delivery_id TEXT    NOT NULL,   -- X-Gitea-Delivery, X-GitHub-Delivery, X-Gitlab-Event-UUID
    forge       TEXT    NOT NULL CHECK (forge IN ('gitea', 'github', 'gitlab')),
    event       TEXT    NOT NULL,   -- push, ping, ... as the forge names it
    branch      TEXT,
    commit_sha  TEXT,
    pusher      TEXT,
    queues      TEXT    NOT NULL DEFAULT '[]',  -- JSON array of the queue ids it made
    outcome     TEXT    NOT NULL CHECK (outcome IN ('started', 'ignored', 'error')),
    reason      TEXT,
    received_at TIMESTAMP NOT NULL,
    UNIQUE (repo, delivery_id)
);
CREATE INDEX hook_deliveries_repo ON hook_deliveries(repo, id);

-- Outgoing: one row per commit status or notification. The secret is never
-- stored: `auth_env` names the environment variable that holds it.
CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('status', 'notify')),
    event       TEXT    NOT NULL,   -- status: the state (pending, success, ...); notify: queue.started, ...
    queue_id    TEXT    REFERENCES queues(id) ON DELETE SET NULL,
    hook_id     INTEGER REFERENCES hook_deliveries(id) ON DELETE SET NULL,
    forge       TEXT    CHECK (forge IN ('gitea', 'github', 'gitlab')),
    auth_env    TEXT,
    context     TEXT,               -- status: testarena or testarena/<scenario>
    target_url  TEXT    NOT NULL,
    payload     TEXT    NOT NULL,   -- the JSON body, as sent
    state       TEXT    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'delivered', 'failed', 'superseded')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_code   INTEGER,            -- the last answer's HTTP status
    last_answer TEXT,               -- its body's first 2 KiB
    last_error  TEXT,               -- a connection error or timeout, in words
    next_try_at TIMESTAMP NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(state, next_try_at);
CREATE INDEX deliveries_queue ON deliveries(queue_id, id);
CREATE INDEX deliveries_hook ON deliveries(hook_id);

-- Status changes not yet turned into deliveries: written by the trigger in
-- the same statement as the change (whichever store function makes it),
-- removed by the app once it has written the deliveries they call for.
CREATE TABLE delivery_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    event   TEXT    NOT NULL CHECK (event IN ('queue.status', 'board.bad')),
    subject TEXT    NOT NULL,       -- the queue id or the board id
    status  TEXT    NOT NULL,       -- the queue's new status; board.bad: the reason
    at      TIMESTAMP NOT NULL
);

CREATE TRIGGER queues_delivery_event AFTER UPDATE OF status ON queues
WHEN NEW.status <> OLD.status AND NEW.status <> 'waiting'
BEGIN
    INSERT INTO delivery_events (event, subject, status, at)
    VALUES ('queue.status', NEW.id, NEW.status, strftime('%Y-%m-%d %H:%M:%f', 'now'));
END;
