"""The sink contract: where a run's per-epoch records go (files, console, trackers).

The trainer calls sinks; sinks (``lossbench.train.sinks``, ``lossbench.tracking``)
implement this class. Both sides depend on this module and on nothing of each
other, so data flows one way: trainer -> Sink <- implementations.

Epochs are numbered from 1 everywhere a user reads them: a record's ``epoch``
is the number of passes over the training set completed when it was made.
"""

from __future__ import annotations


class Sink:
    """Receives every epoch's metrics; ``close`` is called once at the end.

    Order of calls: ``resume`` once, ``start`` once, then per epoch any number of ``batch`` calls
    followed by one ``epoch``, then ``close`` once (also when the run fails).
    """

    def resume(self, history: list[dict]) -> None:
        """Called first, with the epoch records the run already has (from its checkpoint; [] if none)."""

    def start(self, num_epochs: int, start_epoch: int = 0) -> None:
        """Called before the first epoch that will run; ``start_epoch`` epochs are done already
        (a resumed run), so the next record is epoch ``start_epoch + 1``."""

    def batch(self, epoch: int, done: int, total: int) -> None:
        """Called after each optimizer step: ``done`` of ``total`` samples of epoch ``epoch`` (1-based)
        are processed. Optional; it must be cheap (it runs once per step)."""

    def epoch(self, record: dict) -> None:
        """One finished epoch: ``record["epoch"]`` (1-based) and its metrics."""
        raise NotImplementedError

    def close(self, summary: dict | None) -> None:
        """Called once at the end: with the run's summary, or None if it failed."""
