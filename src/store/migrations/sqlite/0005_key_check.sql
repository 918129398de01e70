-- One key, checked: a value derived from the operator's key, recorded by the first instance
-- that opens the database with it (at `init`, or at the first `serve`); an instance with
-- another key refuses to start instead of sealing secrets the others cannot open.
CREATE TABLE key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value BLOB NOT NULL
);
