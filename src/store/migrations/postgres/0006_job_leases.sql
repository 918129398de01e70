-- Several workers, one queue: each claim names its lease, and only the holder of the current
-- lease may complete, bury or give back the job (a worker whose lease ran out and was taken
-- over is fenced off).
ALTER TABLE jobs ADD COLUMN lease_id TEXT NOT NULL DEFAULT '';
