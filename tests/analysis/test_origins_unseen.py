"""A path the log shows closed but the scope found open (a REVOKE that revoked nothing: another grantor's
grant of the same privilege stays; or a reopening the lines read do not show) counts as open from the
log's last closing on: reads after it are exposure, not reads outside every open path (issue 27)."""

from __future__ import annotations

from datetime import timedelta

from pausegate.analysis.origins import Intervals, OriginFinder
from pausegate.analysis.origins_paths import scope_paths
from pausegate.models.origins import OriginDocument
from tests.analysis.test_origins_statements import T0, K, Log, path, scope, spans


def recorded(log: Log, minutes: int = 5) -> OriginDocument:
    finder = OriginFinder(scope_paths([scope()], ["bg"]), recorded_at=log.at + timedelta(minutes=minutes))
    finder.add(log.records, "bundle")
    return finder.finish(window_start=T0, window_end=log.at + timedelta(hours=1))


class TestOpenWhereTheLogSaysClosed:
    def test_reads_after_a_revoke_that_revoked_nothing_are_exposure(self) -> None:
        log = Log()
        t1 = log.said("helper", "GRANT SELECT ON data.keys TO staff")
        t2 = log.said("owner", "REVOKE SELECT ON data.keys FROM staff")  # the owner's: helper's grant stays
        doc = recorded(log)
        staff = path(doc, f"grant:{K}:staff")
        assert staff.origin == "unknown"
        assert spans(doc, f"grant:{K}:staff") == [(t1, t2), (t2, None)]
        assert staff.intervals[-1].opened_by is None  # who reopened it, if anyone did, the log does not say
        covers = Intervals(doc).covers
        assert covers("ann", K, "direct", None, t2 + timedelta(minutes=1))
        assert not covers("ann", K, "direct", None, t1 - timedelta(seconds=1))  # before the grant: still not

    def test_the_unseen_stretch_ends_where_the_log_shows_it_opened_again(self) -> None:
        log = Log()
        t1 = log.said("owner", "GRANT SELECT ON data.keys TO staff")
        t2 = log.said("owner", "REVOKE SELECT ON data.keys FROM staff")
        at = log.at + timedelta(minutes=5)  # the scope is recorded here, and finds the grant open
        log.at = at + timedelta(minutes=1)
        t3 = log.said("owner", "GRANT SELECT ON data.keys TO staff")
        finder = OriginFinder(scope_paths([scope()], ["bg"]), recorded_at=at)
        finder.add(log.records, "bundle")
        doc = finder.finish(window_start=T0, window_end=log.at + timedelta(hours=1))
        assert spans(doc, f"grant:{K}:staff") == [(t1, t2), (t2, t3), (t3, None)]

    def test_a_path_granted_again_after_the_scope_found_it_open_was_open_from_before_the_log(self) -> None:
        log = Log()
        log.at += timedelta(minutes=10)
        at = T0 + timedelta(minutes=5)  # recorded before every line read
        t1 = log.said("owner", "GRANT SELECT ON data.keys TO staff")
        finder = OriginFinder(scope_paths([scope()], ["bg"]), recorded_at=at)
        finder.add(log.records, "bundle")
        doc = finder.finish(window_start=T0, window_end=log.at + timedelta(hours=1))
        assert spans(doc, f"grant:{K}:staff") == [(None, t1), (t1, None)]
