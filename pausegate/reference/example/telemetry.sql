-- The worked example's dataset as it stood when the leak was found.
-- Idempotent: running it again changes nothing that is already in place.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'all_employees') THEN
    CREATE ROLE all_employees NOLOGIN;           -- every employee is a member
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telemetry_ingest') THEN
    CREATE ROLE telemetry_ingest LOGIN;          -- the fleet's writer
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telemetry_analysts') THEN
    CREATE ROLE telemetry_analysts NOLOGIN;      -- the ML team that should have been the only readers
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ml_trainer') THEN
    CREATE ROLE ml_trainer LOGIN IN ROLE telemetry_analysts;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'security_breakglass') THEN
    CREATE ROLE security_breakglass LOGIN;       -- incident response keeps access during a pause
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'schema_migrations') THEN
    CREATE ROLE schema_migrations LOGIN;         -- the migration tool: it may pass on read access
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hr_consent') THEN
    CREATE ROLE hr_consent NOLOGIN;              -- HR's consent registry: the one path a consent may take
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dashboard_author') THEN
    CREATE ROLE dashboard_author LOGIN IN ROLE all_employees;  -- a colleague who builds dashboards
  END IF;
END $$;

CREATE SCHEMA IF NOT EXISTS telemetry;

CREATE TABLE IF NOT EXISTS telemetry.keystrokes (
  id            bigserial PRIMARY KEY,
  agent_id      text        NOT NULL,
  employee      text        NOT NULL,
  captured_at   timestamptz NOT NULL DEFAULT now(),
  key_code      integer     NOT NULL,
  typed_content text,                            -- the sensitive typed text
  window_title  text
);

CREATE TABLE IF NOT EXISTS telemetry.mouse_events (
  id          bigserial PRIMARY KEY,
  agent_id    text        NOT NULL,
  employee    text        NOT NULL,
  captured_at timestamptz NOT NULL DEFAULT now(),
  x           integer     NOT NULL,
  y           integer     NOT NULL,
  button      text
);

-- A data type an agent no longer captures is written as NULL (the collection profile), so no column of
-- a captured data type is NOT NULL.
ALTER TABLE telemetry.keystrokes ALTER COLUMN key_code DROP NOT NULL;
ALTER TABLE telemetry.mouse_events ALTER COLUMN x DROP NOT NULL, ALTER COLUMN y DROP NOT NULL;

-- Who consented to collection, as HR records it (seeded per employee by seed.py). An employee
-- without a row has not consented.
CREATE TABLE IF NOT EXISTS telemetry.consent (
  employee    text        PRIMARY KEY,
  granted     boolean     NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);

-- HR records consent through its registry role; the runbook counts only grants written as that role
-- (consent.granting_roles), which the database records row by row (seed.py adds the provenance trigger).
GRANT USAGE ON SCHEMA telemetry TO hr_consent;
GRANT SELECT, INSERT, UPDATE ON telemetry.consent TO hr_consent;

CREATE INDEX IF NOT EXISTS keystrokes_captured_at ON telemetry.keystrokes (captured_at);
CREATE INDEX IF NOT EXISTS mouse_events_captured_at ON telemetry.mouse_events (captured_at);

-- The writer and the intended readers.
GRANT USAGE ON SCHEMA telemetry TO telemetry_ingest, telemetry_analysts, security_breakglass;
GRANT INSERT ON telemetry.keystrokes, telemetry.mouse_events TO telemetry_ingest;
GRANT USAGE ON SEQUENCE telemetry.keystrokes_id_seq, telemetry.mouse_events_id_seq TO telemetry_ingest;
GRANT SELECT ON telemetry.keystrokes, telemetry.mouse_events TO telemetry_analysts, security_breakglass;

-- The leak: convenience grants that made the tables readable company-wide, made by the migrations
-- (seed.py runs them as schema_migrations, so the statement log shows who opened each path, and when).
GRANT USAGE ON SCHEMA telemetry TO PUBLIC;
GRANT SELECT ON telemetry.keystrokes, telemetry.mouse_events TO schema_migrations WITH GRANT OPTION;

-- A convenience view someone made for a dashboard, in another schema, readable by everyone: a
-- second door to the keystrokes (it reads them with its owner's rights, whatever the reader has).
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE OR REPLACE VIEW analytics.recent_keystrokes AS
  SELECT employee, captured_at, window_title, typed_content
  FROM telemetry.keystrokes
  WHERE captured_at > now() - interval '7 days';
GRANT USAGE ON SCHEMA analytics TO all_employees;
GRANT SELECT ON analytics.recent_keystrokes TO dashboard_author WITH GRANT OPTION;  -- seed.py: its grant to all

-- A sandbox every employee may create tables in: where a curious employee keeps a copy of what they
-- could read (``browsing.copy_once``), and shares it.
CREATE SCHEMA IF NOT EXISTS sandbox;
GRANT USAGE, CREATE ON SCHEMA sandbox TO all_employees;

-- The canary a drill practises on (the runbook's `canary`): a table of its own schema with the
-- telemetry grants' pattern (a writer, readers, a column grant, default privileges) given to canary
-- roles of its own. A drill ends the sessions of login roles that lose access, as a pause does, so no
-- role of the real pipeline is granted here. No real data is ever written to it.
-- Static statements, not EXECUTE: a script that runs dynamic SQL beside the data's names is a possible
-- copy of the data to a pause's copy finder.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telemetry_canary_writer') THEN
    CREATE ROLE telemetry_canary_writer NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telemetry_canary_reader') THEN
    CREATE ROLE telemetry_canary_reader NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telemetry_canary_analyst') THEN
    CREATE ROLE telemetry_canary_analyst NOLOGIN;
  END IF;
END $$;
CREATE SCHEMA IF NOT EXISTS telemetry_canary;
CREATE TABLE IF NOT EXISTS telemetry_canary.keystrokes (
  id          bigserial PRIMARY KEY,
  agent_id    text        NOT NULL,
  employee    text        NOT NULL,
  captured_at timestamptz NOT NULL DEFAULT now(),
  key_code    integer
);
GRANT USAGE ON SCHEMA telemetry_canary
  TO telemetry_canary_writer, telemetry_canary_reader, telemetry_canary_analyst;
GRANT INSERT ON telemetry_canary.keystrokes TO telemetry_canary_writer;
GRANT USAGE ON SEQUENCE telemetry_canary.keystrokes_id_seq TO telemetry_canary_writer;
GRANT SELECT ON telemetry_canary.keystrokes TO telemetry_canary_reader;
GRANT SELECT (employee, captured_at) ON telemetry_canary.keystrokes TO telemetry_canary_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA telemetry_canary GRANT SELECT ON TABLES TO telemetry_canary_reader;
