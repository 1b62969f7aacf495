-- Asynchronous inference: the requests and each user's usage per quota window.
-- Applied in order by runtime/src/async/store/migrate.ts (at start-up, or by
-- `node bin/migrate.js` in the Kubernetes migration Job), each file in one
-- transaction and recorded in schema_migrations. A file, once released, never
-- changes (its checksum is checked): change the schema with a new, higher number.
-- Plain PostgreSQL that PGlite (the embedded store) runs too.

CREATE TABLE requests (
  id            text        PRIMARY KEY,
  user_id       text        NOT NULL,
  model         text        NOT NULL,
  -- The version the client asked for; NULL: the server's choice.
  model_version text,
  status        text        NOT NULL DEFAULT 'queued'
                CONSTRAINT requests_status_check CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  input_bytes   bigint      NOT NULL CHECK (input_bytes >= 0),
  tokens        bigint      NOT NULL CHECK (tokens >= 0),
  -- Deliveries to the worker so far (redeliveries included).
  attempts      integer     NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL DEFAULT now(),
  started_at    timestamptz,
  finished_at   timestamptz,
  -- The V2 inference request, kept so the worker can run it from the store.
  request       jsonb       NOT NULL,
  -- The V2 inference response once succeeded; why it failed once failed.
  response      jsonb,
  error         text,
  -- A nonce of the call that inserted the row: a write retried after a lost
  -- COMMIT acknowledgement still knows that it was the one that created it.
  submission    text
);

CREATE INDEX requests_user_created_idx ON requests (user_id, created_at);
CREATE INDEX requests_status_idx ON requests (status);

-- Requests and tokens per user and fixed quota window (window_start aligned to the epoch).
CREATE TABLE usage (
  user_id      text        NOT NULL,
  window_start timestamptz NOT NULL,
  requests     bigint      NOT NULL DEFAULT 0,
  tokens       bigint      NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, window_start)
);
