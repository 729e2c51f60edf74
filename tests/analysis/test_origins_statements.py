"""What each kind of statement does to the scope's paths, read from jsonlog lines as the server writes
them: memberships, default privileges, views and routines, owners, row security, SET ROLE, CASCADE,
transactions, failures, dynamic SQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pausegate.analysis.origins import Intervals, OriginFinder
from pausegate.analysis.origins_paths import scope_paths
from pausegate.models.access import ExposureScope, GrantRecord, MembershipRecord, ObjectRecord, RoleRecord
from pausegate.models.origins import OriginDocument, PathOrigin

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
K = "data.keys"
V = "reports.v"
F = "reports.peek"


def scope() -> ExposureScope:
    return ExposureScope(
        dataset="keys", objects=[K, V, F], schema_name="data", break_glass_roles=["bg"], access=[],
        grants=[GrantRecord(object=K, grantee="staff", grantor="owner", privilege="SELECT"),
                GrantRecord(object=K, grantee="helper", grantor="owner", privilege="SELECT", grantable=True),
                GrantRecord(object=K, grantee="friend", grantor="helper", privilege="SELECT"),
                GrantRecord(object=V, object_kind="view", grantee="PUBLIC", grantor="dash", privilege="SELECT"),
                GrantRecord(object=F + "()", object_kind="function", grantee="PUBLIC", grantor="dash",
                            privilege="EXECUTE"),
                GrantRecord(object="data.<future tables of owner>", object_kind="default_privileges",
                            grantee="PUBLIC", grantor="owner", privilege="SELECT")],
        object_details=[ObjectRecord(name=K, kind="table", owner="owner"),
                        ObjectRecord(name=V, kind="view", owner="dash", depends_on=[K]),
                        ObjectRecord(name=F + "()", kind="function", owner="dash", depends_on=[K])],
        roles=[RoleRecord(name="staff"), RoleRecord(name="ann", login=True), RoleRecord(name="ben", login=True)],
        memberships=[MembershipRecord(role="staff", member="ann", grantor="owner"),
                     MembershipRecord(role="staff", member="ben", grantor="owner")],
    )


class Log:
    """jsonlog lines, one second apart, per session."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.lines: dict[str, int] = {}
        self.at = T0

    def said(self, user: str, message: str, *, session: str = "s1", error: bool = False) -> datetime:
        self.at += timedelta(seconds=1)
        self.lines[session] = self.lines.get(session, 0) + 1
        entry = {"timestamp": self.at.strftime("%Y-%m-%d %H:%M:%S.000 UTC"), "user": user, "dbname": "d",
                 "session_id": session, "line_num": self.lines[session],
                 "error_severity": "ERROR" if error else "LOG",
                 "message": message if error else f"statement: {message}", "remote_host": "10.1.2.3",
                 "application_name": "psql"}
        self.records.append({"at": self.at.isoformat(), "file": "f.json", "offset": len(self.records) * 100,
                             "line": json.dumps(entry)})
        return self.at

    def origins(self) -> OriginDocument:
        finder = OriginFinder(scope_paths([scope()], ["bg"]))
        finder.add(self.records, "bundle")
        return finder.finish(window_start=T0, window_end=self.at + timedelta(hours=1))


def path(document: OriginDocument, path_id: str) -> PathOrigin:
    return next(p for p in document.paths if p.id == path_id)


def spans(document: OriginDocument, path_id: str) -> list[tuple[datetime | None, datetime | None]]:
    return [(i.opened_at, i.closed_at) for i in path(document, path_id).intervals]


class TestStatements:
    def test_memberships_granted_made_with_a_role_and_revoked(self) -> None:
        log = Log()
        t1 = log.said("admin", "CREATE ROLE ann LOGIN IN ROLE staff")
        t2 = log.said("admin", "GRANT staff TO ben")
        t3 = log.said("admin", "REVOKE staff FROM ben")
        t4 = log.said("admin", "GRANT staff TO ben")
        doc = log.origins()
        assert spans(doc, "membership:staff:ann") == [(t1, None)]
        assert spans(doc, "membership:staff:ben") == [(t2, t3), (t4, None)]

    def test_set_role_names_the_role_in_force_and_reset_ends_it(self) -> None:
        log = Log()
        log.said("deploy", "SET ROLE owner")
        t = log.said("deploy", "GRANT SELECT ON data.keys TO staff")
        log.said("deploy", "RESET ROLE")
        log.said("deploy", "REVOKE SELECT ON data.keys FROM staff")
        doc = log.origins()
        first = path(doc, f"grant:{K}:staff").intervals[0]
        assert first.opened_at == t and first.opened_by is not None
        assert (first.opened_by.user, first.opened_by.role) == ("deploy", "owner")
        assert first.closed_by is not None and first.closed_by.role == "deploy"

    def test_a_failed_grant_and_a_rolled_back_one_open_nothing(self) -> None:
        log = Log()
        log.said("eve", "GRANT SELECT ON data.keys TO staff")
        log.said("eve", "permission denied for table keys", error=True)
        log.said("eve", "BEGIN; GRANT SELECT ON data.keys TO staff; ROLLBACK", session="s2")
        doc = log.origins()
        assert path(doc, f"grant:{K}:staff").origin == "before_log"

    def test_revoking_a_grant_option_with_cascade_closes_what_was_granted_with_it(self) -> None:
        log = Log()
        t1 = log.said("helper", "GRANT SELECT ON data.keys TO friend")
        t2 = log.said("owner", "REVOKE ALL ON data.keys FROM helper CASCADE")
        doc = log.origins()
        assert spans(doc, f"grant:{K}:friend") == [(t1, t2)]
        assert spans(doc, f"grant:{K}:helper") == [(None, t2)]  # granted before the log, closed in it

    def test_views_routines_and_their_grants(self) -> None:
        log = Log()
        t1 = log.said("dash", "SET search_path = reports; CREATE VIEW v AS SELECT * FROM data.keys")
        t2 = log.said("dash", "CREATE FUNCTION reports.peek() RETURNS bigint SECURITY DEFINER LANGUAGE sql "
                      "AS 'SELECT count(*) FROM data.keys'")
        t3 = log.said("dash", "GRANT EXECUTE ON FUNCTION reports.peek() TO PUBLIC")
        t4 = log.said("dash", "GRANT SELECT ON ALL TABLES IN SCHEMA reports TO PUBLIC")
        t5 = log.said("dash", "DROP VIEW reports.v")
        doc = log.origins()
        assert spans(doc, f"view:{V}:dash") == [(t1, t5)]
        assert spans(doc, f"function:{F}:dash") == [(t2, None)]
        assert spans(doc, f"grant:{F}:PUBLIC") == [(t3, None)]
        assert spans(doc, f"grant:{V}:PUBLIC") == [(t4, t5)]  # a dropped view takes its grants with it

    def test_default_privileges_owner_and_row_security(self) -> None:
        log = Log()
        t1 = log.said("owner", "ALTER DEFAULT PRIVILEGES IN SCHEMA data GRANT SELECT ON TABLES TO PUBLIC")
        t2 = log.said("admin", "ALTER TABLE data.keys OWNER TO owner")
        t3 = log.said("owner", "ALTER TABLE data.keys DISABLE ROW LEVEL SECURITY")
        doc = log.origins()
        assert spans(doc, "default_privileges:data.<future tables of owner>:PUBLIC") == [(t1, None)]
        assert spans(doc, f"owner:{K}:owner") == [(t2, None)]
        assert spans(doc, f"rls_off:{K}:owner") == [(t3, None)]

    def test_dynamic_sql_naming_a_path_makes_its_origin_unknown(self) -> None:
        log = Log()
        log.said("eve", "DO $$ BEGIN EXECUTE 'GRANT SELECT ON data.keys TO ' || 'sta' || 'ff'; END $$")
        doc = log.origins()
        staff = path(doc, f"grant:{K}:staff")
        assert staff.origin == "before_log"  # the text never names staff whole: nothing to suspect
        log.said("eve", "DO $$ BEGIN EXECUTE 'GRANT SELECT ON data.keys TO staff'; END $$")
        staff = path(log.origins(), f"grant:{K}:staff")
        assert (staff.origin, staff.suspects) == ("unknown", 1)
        # handed to a routine as text: as suspect
        log.said("eve", "SELECT admin.run('GRANT SELECT ON data.keys TO helper')")
        helper = path(log.origins(), f"grant:{K}:helper")
        assert (helper.origin, helper.suspects) == ("unknown", 1)


class TestIntervals:
    def test_a_read_counts_only_while_a_path_the_reader_had_was_open(self) -> None:
        log = Log()
        t1 = log.said("owner", "GRANT SELECT ON data.keys TO staff")
        t2 = log.said("owner", "REVOKE SELECT ON data.keys FROM staff")
        t3 = log.said("admin", "GRANT staff TO ben")
        t4 = log.said("owner", "GRANT SELECT ON data.keys TO staff")
        covers = Intervals(log.origins()).covers
        assert covers("ann", K, "direct", None, t1)
        assert not covers("ann", K, "direct", None, t2 + timedelta(milliseconds=1))
        assert covers("ann", K, "direct", None, t4)
        assert not covers("ben", K, "direct", None, t1)  # staff's grant was open, ben not yet in staff
        assert not covers("ben", K, "direct", None, t3)  # in staff, but staff's grant closed
        assert covers("ben", K, "direct", None, t4)
        assert covers("root", K, "direct", None, t2)  # no recorded path explains it: counted
        assert covers("ben", K, "possible", "DO block", t2)

    def test_the_headline_names_the_earliest_company_wide_opening(self) -> None:
        log = Log()
        t1 = log.said("deploy", "GRANT SELECT ON data.keys TO staff")
        log.said("dash", "GRANT SELECT ON reports.v TO PUBLIC")
        doc = log.origins()
        # the routine's grant to PUBLIC is older than the log: said plainly, not guessed
        assert doc.headline is not None and doc.headline.since is None and doc.headline.before == t1
        assert doc.headline.path == f"grant:{F}:PUBLIC" and "since before" in doc.headline.sentence()
        assert path(doc, f"grant:{K}:staff").intervals[0].opened_at == t1  # the later company-wide opening
        # a default privilege reaches tables made later, through their own grants: not itself the leak
        assert not path(doc, "default_privileges:data.<future tables of owner>:PUBLIC").company_wide

    def test_the_exposure_ends_when_its_last_path_closed(self) -> None:
        """Owners, break-glass and the roles meant to read stay open: the exposure's end is its own paths'."""
        log = Log()
        log.said("owner", "GRANT SELECT ON data.keys TO bg")
        closes = [log.said("owner", "REVOKE ALL ON data.keys FROM staff, helper CASCADE"),
                  log.said("dash", "DROP VIEW reports.v"),
                  log.said("dash", "DROP FUNCTION reports.peek()"),
                  log.said("owner", "ALTER DEFAULT PRIVILEGES IN SCHEMA data REVOKE SELECT ON TABLES FROM PUBLIC"),
                  log.said("admin", "REVOKE staff FROM ann, ben")]
        document = log.origins()
        assert document.until == closes[-1]
        assert path(document, f"owner:{K}:owner").intervals[-1].closed_at is None

    def test_a_path_the_log_shows_closed_but_the_scope_found_open_was_reopened_unseen(self) -> None:
        """The scope, recorded after the log's last word on a path, found it open: the reopening is not in
        the lines read, so its origin is unknown, never the earlier opening."""
        log = Log()
        log.said("owner", "GRANT SELECT ON data.keys TO staff")
        log.said("owner", "REVOKE SELECT ON data.keys FROM staff")
        finder = OriginFinder(scope_paths([scope()]), recorded_at=log.at + timedelta(minutes=5))
        finder.add(log.records)
        staff = path(finder.finish(window_start=T0, window_end=log.at + timedelta(hours=1)), f"grant:{K}:staff")
        assert staff.origin == "unknown"
