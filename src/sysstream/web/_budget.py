"""The bytes that history responses waiting for slow readers may hold, all clients together.

A history body is encoded whole (the query runs under the :class:`QueryGate`, then its rows
are gone) and is held until the server has handed it to the kernel, which a client that
stops reading delays until the write deadline aborts it. :class:`ResponseBudget` bounds the
sum of those bodies; a response that does not fit is refused at once (HTTP 503 with
``Retry-After``, or close 1013 on a stream) instead of adding to what slow readers hold.

:class:`BudgetedResponse` sends its body in :data:`CHUNK` pieces, each after the connection
has drained below its write buffer's high-water mark (uvicorn's flow control), so the
server's copy of the body in the transport buffer stays one chunk or so; the body is freed
and its bytes returned to the budget once the last piece is handed over, or the client is
gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..sansio import encode_error

__all__ = ["CHUNK", "BudgetedResponse", "ResponseBudget", "budgeted"]

# One write: asyncio's default high-water mark, so a paused connection holds about this
# much of the body beyond what the kernel took.
CHUNK = 64 * 1024
JSON = "application/json"


class ResponseBudget:
    """At most ``maximum`` bytes reserved at once; a reservation is released exactly once."""

    __slots__ = ("held", "maximum", "refused")

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError(f"expected a budget of at least 1 byte, got {maximum}")
        self.maximum = maximum
        self.held = 0
        self.refused = 0  # responses turned away since start

    def reserve(self, size: int) -> bool:
        if self.held + size > self.maximum:
            self.refused += 1
            return False
        self.held += size
        return True

    def release(self, size: int) -> None:
        if size > self.held:
            raise RuntimeError(f"expected at most {self.held} bytes held, got {size} released")
        self.held -= size

    def busy_message(self) -> str:
        return (
            f"responses waiting for slow clients hold {self.held} of {self.maximum} bytes; "
            "try again shortly"
        )


class BudgetedResponse(Response):
    """A JSON body already reserved in ``budget``, sent in chunks and released once sent."""

    def __init__(self, body: bytes, budget: ResponseBudget) -> None:
        super().__init__(body, media_type=JSON)  # sets content-length: no chunked encoding
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = len(self.body)
        view = memoryview(self.body)
        self.body = b""  # the view holds it until the last piece is handed over
        start = {"type": "http.response.start", "status": self.status_code}
        try:
            await send({**start, "headers": self.raw_headers})
            for offset in range(0, size, CHUNK):
                # uvicorn waits, before each write, for a paused connection to drain; once
                # the client is gone (or aborted as stalled) the rest is skipped at once.
                piece = bytes(view[offset : offset + CHUNK])
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            view.release()
            self.budget.release(size)


def budgeted(body: bytes, budget: ResponseBudget | None) -> Response:
    """``body`` as a response charged to ``budget``, or 503 when it does not fit."""
    if budget is None:
        return Response(body, media_type=JSON)
    if not budget.reserve(len(body)):
        return busy(budget.busy_message())
    return BudgetedResponse(body, budget)


def busy(message: str) -> Response:
    """503 with ``Retry-After``: a refusal the client may retry in a second."""
    headers = {"Retry-After": "1"}
    return Response(encode_error(message), status_code=503, media_type=JSON, headers=headers)


async def hold_until_drained(
    budget: ResponseBudget, size: int, drained: Callable[[], Awaitable[object]]
) -> None:
    """Keep ``size`` bytes reserved until ``drained()`` returns (the connection's write
    buffer fell below its low-water mark, or the connection is gone)."""
    try:
        await drained()
    finally:
        budget.release(size)
