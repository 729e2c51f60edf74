"""The fingerprint match: how many of a candidate's sampled rows hold the dataset's values, over what
share of the dataset the fingerprint covers."""

from __future__ import annotations

from pausegate.analysis.copies_fingerprint import MAX_FINGERPRINT_VALUES, fingerprint, match

DIGESTS = [f"{i:032x}" for i in range(100)]


class TestMatch:
    def test_a_full_copy_matches_with_full_confidence(self) -> None:
        fp = fingerprint(DIGESTS, rows_total=100, rows_sampled=100)
        m = match(fp, [[d, None] for d in DIGESTS[:40]])
        assert (m.sampled, m.matched, m.confidence, m.is_copy) == (40, 40, 1.0, True)

    def test_unrelated_rows_do_not_match(self) -> None:
        fp = fingerprint(DIGESTS, rows_total=100, rows_sampled=100)
        m = match(fp, [[f"{i:032x}"] for i in range(1000, 1040)])
        assert (m.matched, m.confidence, m.is_copy) == (0, 0.0, False)

    def test_a_partial_copy_shows_its_share(self) -> None:
        fp = fingerprint(DIGESTS, rows_total=100, rows_sampled=100)
        rows = [[d] for d in DIGESTS[:10]] + [[f"{i:032x}"] for i in range(1000, 1030)]
        m = match(fp, rows)
        assert (m.matched, m.confidence, m.is_copy) == (10, 0.25, True)

    def test_a_sampled_fingerprint_scales_the_confidence_by_its_coverage(self) -> None:
        """A fingerprint of a tenth of the rows: a full copy's sampled rows match about a tenth of the time."""
        fp = fingerprint(DIGESTS[:10], rows_total=100, rows_sampled=10)
        m = match(fp, [[d] for d in DIGESTS[::2]])
        assert fp.coverage == 0.1 and m.matched == 5 and m.confidence == 1.0

    def test_a_few_chance_matches_are_not_a_copy(self) -> None:
        fp = fingerprint(DIGESTS, rows_total=100, rows_sampled=100)
        m = match(fp, [[DIGESTS[0]], [DIGESTS[1]]] + [[f"{i:032x}"] for i in range(1000, 1002)])
        assert m.matched == 2 and not m.is_copy

    def test_the_fingerprint_is_bounded(self) -> None:
        fp = fingerprint((f"{i:032x}" for i in range(MAX_FINGERPRINT_VALUES + 10)), rows_total=1, rows_sampled=1)
        assert len(fp.digests) == MAX_FINGERPRINT_VALUES

    def test_nothing_sampled_is_no_match(self) -> None:
        assert not match(fingerprint(DIGESTS, rows_total=100, rows_sampled=100), []).is_copy
