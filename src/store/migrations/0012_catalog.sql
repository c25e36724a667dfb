-- 0012: the event catalog belongs to the store, not to one process. `herald config apply` (and
-- `herald run`, herald_config_apply) writes a new version when the configuration's catalog or
-- mode differs from the one in force; the highest version is in force for every producer on
-- this store, in any process (store.c, "the event catalog"). Versions are never rewritten: the
-- rows are the history `herald catalog history` shows.
CREATE TABLE herald_catalog_versions (
    version     INTEGER PRIMARY KEY,          -- 1, 2, ...; the highest is in force
    applied_ms  INTEGER NOT NULL,             -- store clock
    mode        TEXT    NOT NULL CHECK (mode IN ('strict', 'warn')),
    catalog     TEXT    NOT NULL,             -- canonical JSON: {"events":{...}}, keys sorted
    changes     TEXT    NOT NULL,             -- JSON array: what changed from the previous one
    is_forced   INTEGER NOT NULL DEFAULT 0,   -- 1: applied with --force over breaking changes
    source      TEXT    NOT NULL DEFAULT ''   -- the catalog file it was read from
) STRICT;
