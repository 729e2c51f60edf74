"""The CLI's client waits a bounded time whatever ``Retry-After`` says, retries a bounded number of times,
then reports the server's answer: a forged rate bucket cannot hang or crash ``pausegate pause``."""

from __future__ import annotations

import httpx
import pytest

from pausegate.cli.api_client import MAX_RETRY_WAIT_S, PausegateClient, retry_after
from pausegate.errors import ApiError
from tests.support.fault_report import record_result

TRIGGERED = {"started": True, "pause": {}}  # read as sent (the model is not asked for)


def client(answers: list[httpx.Response], waits: list[float]) -> tuple[PausegateClient, list[httpx.Request]]:
    """A client whose server gives ``answers`` in turn (the last one for ever) and whose waits are recorded."""
    seen: list[httpx.Request] = []

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    return PausegateClient("http://api.test", "token", transport=httpx.MockTransport(serve),
                           sleep=waits.append), seen


def refused(retry: str) -> httpx.Response:
    return httpx.Response(429, headers={"Retry-After": retry}, json={"error": "rate_limited", "detail": "slow down"})


class TestRetryAfterIsBounded:
    def test_an_absurd_retry_after_is_capped_then_reported_by_its_value(self) -> None:
        waits: list[float] = []
        api, seen = client([refused("199999999999992")], waits)
        with pytest.raises(ApiError) as caught:
            api.trigger("employee-telemetry", "leak")

        assert len(seen) == api.retries  # a bounded number of attempts
        assert len(waits) == api.retries - 1 and all(0 <= w <= MAX_RETRY_WAIT_S for w in waits)
        assert caught.value.status == 429 and caught.value.code == "rate_limited"
        assert "Retry-After: '199999999999992'" in caught.value.detail
        # One idempotency key for every attempt: a retry cannot pull the switch twice.
        assert len({r.headers["Idempotency-Key"] for r in seen}) == 1
        record_result("Retry-After: 199999999999992 on pulling the switch", "pausegate pause's client",
                      injected=len(seen), outcome=f"{len(waits)} waits of at most 30 s, then the API's answer reported")

    @pytest.mark.parametrize("value", ["inf", "nan", "-5", "1e400", "Wed, 21 Oct 2015 07:28:00 GMT", "soon"])
    def test_a_retry_after_that_is_not_a_number_of_seconds_sets_no_wait(self, value: str) -> None:
        waits: list[float] = []
        api, _ = client([refused(value), httpx.Response(201, json=TRIGGERED)], waits)
        assert api.trigger("employee-telemetry", "leak").json == TRIGGERED
        assert waits == [api.retry_delay]

    def test_a_sensible_retry_after_is_honoured(self) -> None:
        waits: list[float] = []
        api, _ = client([refused("2"), httpx.Response(201, json=TRIGGERED)], waits)
        assert api.trigger("employee-telemetry", "leak").json["started"]
        assert waits == [2.0]

    def test_retry_after_reads_only_finite_non_negative_seconds(self) -> None:
        assert retry_after("3") == 3.0 and retry_after(" 0.5 ") == 0.5
        assert retry_after(None) is None and retry_after("inf") is None and retry_after("-1") is None
