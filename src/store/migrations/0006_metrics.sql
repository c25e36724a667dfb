-- 0006: handler metrics written by the metrics middleware: per queue, event type and outcome, a
-- count, the summed duration and a latency histogram (upper bounds in ms: 1 2 5 10 25 50 100
-- 250 500 1000 2500 5000, and above). `herald metrics` reads it; the server will export it.
CREATE TABLE herald_metrics (
    queue    TEXT    NOT NULL,
    type     TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    count    INTEGER NOT NULL DEFAULT 0,
    sum_ms   REAL    NOT NULL DEFAULT 0,
    b0 INTEGER NOT NULL DEFAULT 0, b1 INTEGER NOT NULL DEFAULT 0, b2 INTEGER NOT NULL DEFAULT 0,
    b3 INTEGER NOT NULL DEFAULT 0, b4 INTEGER NOT NULL DEFAULT 0, b5 INTEGER NOT NULL DEFAULT 0,
    b6 INTEGER NOT NULL DEFAULT 0, b7 INTEGER NOT NULL DEFAULT 0, b8 INTEGER NOT NULL DEFAULT 0,
    b9 INTEGER NOT NULL DEFAULT 0, b10 INTEGER NOT NULL DEFAULT 0, b11 INTEGER NOT NULL DEFAULT 0,
    b12 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, type, outcome)
) STRICT, WITHOUT ROWID;
