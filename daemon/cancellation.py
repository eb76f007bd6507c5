"""How a cancelled caller of a write that already went to the writer is answered.

A write handed to a batch commits (or fails) whatever happens to its caller. Internal work
(scans, jobs, shutdown) is cancelled the asyncio way: it waits for that outcome, then the
cancellation goes on. An RPC request instead reports the outcome, because telling a client
"cancelled" about a write that was committed would be a lie; the dispatcher sets this flag
for the task of each request.
"""

from __future__ import annotations

from contextvars import ContextVar

outcome_over_cancel: ContextVar[bool] = ContextVar("outcome_over_cancel", default=False)
