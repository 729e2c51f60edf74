-- A dataset reachable by every path pausegate knows. __P__ is replaced by a per-test prefix
-- (roles are cluster-wide; each test gets its own database).

CREATE ROLE __P__owner NOLOGIN;                       -- owns the tables, view, matview and function
CREATE ROLE __P__owner_member LOGIN IN ROLE __P__owner;
CREATE ROLE __P__direct LOGIN;
CREATE ROLE __P__col LOGIN;
CREATE ROLE __P__grantopt LOGIN;
CREATE ROLE __P__regrantee LOGIN;
CREATE ROLE __P__group NOLOGIN;
CREATE ROLE __P__subgroup NOLOGIN IN ROLE __P__group;
CREATE ROLE __P__nested LOGIN IN ROLE __P__subgroup;
CREATE ROLE __P__setonly LOGIN;
GRANT __P__group TO __P__setonly WITH INHERIT FALSE;    -- reaches the data only through SET ROLE
CREATE ROLE __P__reader_all LOGIN IN ROLE pg_read_all_data;
CREATE ROLE __P__writer_all LOGIN IN ROLE pg_write_all_data;
CREATE ROLE __P__viewer LOGIN;
CREATE ROLE __P__mviewer LOGIN;
CREATE ROLE __P__fn LOGIN;
CREATE ROLE __P__future LOGIN;
CREATE ROLE __P__anyone LOGIN;                          -- only what PUBLIC has
CREATE ROLE __P__super LOGIN SUPERUSER;
CREATE ROLE __P__bypass LOGIN BYPASSRLS;
CREATE ROLE __P__bg LOGIN;                              -- break-glass

CREATE SCHEMA data;
CREATE SCHEMA reports;

CREATE TABLE data.people (id serial PRIMARY KEY, name text, secret text);
CREATE TABLE data.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, person int, what text);
INSERT INTO data.people (name, secret) VALUES ('ann', 's1'), ('bob', 's2');
INSERT INTO data.events (person, what) VALUES (1, 'login');
ALTER TABLE data.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON data.events USING (false);
ALTER TABLE data.people OWNER TO __P__owner;
ALTER TABLE data.events OWNER TO __P__owner;

CREATE VIEW reports.people_v AS SELECT id, name, secret FROM data.people;
CREATE MATERIALIZED VIEW reports.events_mv AS SELECT * FROM data.events;
ALTER VIEW reports.people_v OWNER TO __P__owner;
ALTER MATERIALIZED VIEW reports.events_mv OWNER TO __P__owner;
CREATE FUNCTION reports.peek() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT secret FROM data.people $$;
ALTER FUNCTION reports.peek() OWNER TO __P__owner;     -- EXECUTE stays with PUBLIC (the default)

GRANT USAGE ON SCHEMA data TO PUBLIC;
GRANT USAGE ON SCHEMA data TO __P__bg;
GRANT USAGE ON SCHEMA reports TO PUBLIC;

GRANT SELECT ON data.people TO __P__direct;
GRANT SELECT (id, name) ON data.people TO __P__col;
GRANT SELECT ON data.people, data.events TO __P__group;
GRANT SELECT ON data.events TO PUBLIC;
GRANT SELECT ON data.people, data.events TO __P__bypass;
GRANT SELECT ON data.people, data.events TO __P__bg;
GRANT SELECT ON data.people TO __P__grantopt WITH GRANT OPTION;
GRANT SELECT ON reports.people_v TO __P__grantopt WITH GRANT OPTION;
GRANT SELECT ON reports.people_v TO __P__viewer;
GRANT SELECT ON reports.events_mv TO __P__mviewer;
GRANT EXECUTE ON FUNCTION reports.peek() TO __P__fn;
GRANT INSERT ON data.events TO __P__direct;

SET ROLE __P__grantopt;
GRANT SELECT ON data.people TO __P__regrantee;          -- a grant whose grantor is not the owner
GRANT SELECT ON reports.people_v TO __P__bg;            -- break-glass reaches the view only through this chain
RESET ROLE;

-- Future tables: created by the operator or by the owner, readable by these.
ALTER DEFAULT PRIVILEGES IN SCHEMA data GRANT SELECT ON TABLES TO __P__future;
ALTER DEFAULT PRIVILEGES FOR ROLE __P__owner IN SCHEMA data GRANT SELECT ON TABLES TO __P__group;
