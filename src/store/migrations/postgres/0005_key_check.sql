-- One key, checked: a value derived from the operator's key, recorded by the first instance
-- that opens the database with it; an instance with another key refuses to start.
CREATE TABLE key_check (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    value BYTEA NOT NULL
);
