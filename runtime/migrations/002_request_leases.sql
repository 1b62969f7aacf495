-- Asynchronous inference keeps its promises: every accepted request ends.
--
-- A queued or running request is held by one process (worker: a per-process
-- id) until lease_until; the holder renews the lease while it holds the request
-- (the in-process queue's backlog, a request being run). A request whose lease
-- has expired is stranded (its process died or lost the database): the sweeper
-- of any replica claims it (FOR UPDATE SKIP LOCKED), re-queues it or, once its
-- attempts are spent, fails it with a reason in `error`.
--
-- published_at is the outbox: NULL until the Broker confirmed the request event
-- (2xx). A queued request never confirmed published is published again by the
-- sweeper once its lease has expired.
--
-- usage_window: the quota window the request was counted in, so that a request
-- that fails before it could run because of the platform is refunded exactly
-- (refunded_at: at most once).

ALTER TABLE requests
  ADD COLUMN worker       text,
  ADD COLUMN lease_until  timestamptz,
  ADD COLUMN published_at timestamptz,
  ADD COLUMN usage_window timestamptz,
  ADD COLUMN refunded_at  timestamptz;

-- The sweeper's scan: only unfinished requests, by lease.
CREATE INDEX requests_unfinished_lease_idx ON requests (lease_until) WHERE status IN ('queued', 'running');
