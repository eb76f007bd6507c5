"""The writer's figures for `daemon.status`, and where a batch's time goes, stage by stage.

A batch's cycle is: its oldest write waits in the queue; the event loop runs statements;
the job crosses to the writer's thread; the thread runs whatever the loop left; COMMIT
(fsync, then taking the GIL back); the result crosses back to the loop, which resolves the
callers' futures. The two crossings are the hand-off tax issue 18 is about: measured here,
in the daemon, under whatever load it has, rather than estimated.
"""

from __future__ import annotations

import msgspec

from daemon.store.batch import Batch
from daemon.store.stats import Window


class WriterStages(msgspec.Struct, kw_only=True):
    """Medians (ms) of each stage over the last batches."""

    queued_ms_p50: float  # the oldest write of a batch waited this long for the batch to start
    loop_ms_p50: float  # statements the event loop ran (0 for batches begun on the thread)
    to_thread_ms_p50: float  # loop -> writer's thread: a wake-up on another core
    thread_ms_p50: float  # statements the loop left to the thread (heavy, past its budget)
    commit_ms_p50: float  # COMMIT: the WAL write, fsync, and the GIL taken back
    to_loop_ms_p50: float  # thread -> loop: call_soon_threadsafe until the loop runs it


class Stages:
    """The stages of the last 1,024 batches."""

    def __init__(self) -> None:
        self.queued, self.loop, self.to_thread = Window(), Window(), Window()
        self.thread, self.commit, self.to_loop = Window(), Window(), Window()

    def add(self, batch: Batch[object], queued: float, delivered: float) -> None:
        """A committed batch: `queued` when its oldest write was queued, `delivered` when
        the loop got it back (perf_counter times, as the batch's own)."""
        self.queued.add(_ms(queued, batch.started))
        self.loop.add(_ms(batch.started, batch.handed))
        self.to_thread.add(_ms(batch.handed, batch.on_thread))
        self.thread.add(_ms(batch.on_thread, batch.committing))
        self.commit.add(batch.commit_ms)
        self.to_loop.add(_ms(batch.committing + batch.commit_ms / 1000, delivered))

    def summary(self) -> WriterStages:
        return WriterStages(
            queued_ms_p50=_p50(self.queued),
            loop_ms_p50=_p50(self.loop),
            to_thread_ms_p50=_p50(self.to_thread),
            thread_ms_p50=_p50(self.thread),
            commit_ms_p50=_p50(self.commit),
            to_loop_ms_p50=_p50(self.to_loop),
        )


def _p50(window: Window) -> float:
    return round(window.p(50), 3)


def _ms(begin: float, end: float) -> float:
    """From one perf_counter time to another, in ms (0 where a stamp was never set)."""
    return max(0.0, end - begin) * 1000 if begin and end else 0.0


class WriterStats(msgspec.Struct, kw_only=True):
    batches: int
    batches_on_thread: int  # batches whose operations the loop did not all run itself
    writes: int
    failed_writes: int
    busy_rejections: int
    queue_depth: int
    queue_max: int
    queue_depth_peak: int
    batch_size_p50: float
    batch_size_p99: float
    batch_size_max: float
    commit_ms_p50: float
    commit_ms_p99: float
    batch_ms_p50: float
    batch_ms_p99: float
    stages: WriterStages  # where a batch's time goes
