"""A workflow that does nothing but answer an update: the floor under every reviewer action."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="BareUpdate")
class BareUpdate:
    def __init__(self) -> None:
        self.count = 0
        self.done = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.done)
        return self.count

    @workflow.update
    def touch(self, n: int) -> int:
        self.count += 1
        return n

    @workflow.signal
    def finish(self) -> None:
        self.done = True
