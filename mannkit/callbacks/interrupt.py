"""Ctrl-C stops a run at the next batch boundary, never in the middle of whatever Python was doing.

Python's own SIGINT handler raises ``KeyboardInterrupt`` wherever the main thread happens to be. Inside
a ``queue.Queue.put`` of TensorBoard's event writer (between storing an event and waking the writer
thread) that leaves the writer asleep, and Lightning's shutdown, which closes the logger, then waits
for it for up to its flush interval (two minutes): the run seemed to hang after its resume message
(3 of 9 interrupted runs on a loaded 2-CPU machine; 0 of 22 with this module). So the ``mannkit`` command's SIGINT handler
(:func:`mannkit.cli._guard_second_interrupt`) only asks for a stop while a trainer runs
(:func:`request_stop`), and :class:`SafeInterrupt`, which the command adds to every trainer, raises
``KeyboardInterrupt`` at the start of the next training, validation, test or predict batch. From
there Lightning's handling is the usual one (``last.ckpt`` saved, the resume command printed). A
further Ctrl-C more than :data:`FORCE_AFTER` seconds after the first, with the boundary still not
reached (a long compile, a slow batch), raises at once; signals that come together (``timeout -s INT``
sends two) wait for the boundary like the first.
"""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.callbacks import Callback

__all__ = ["SafeInterrupt", "request_stop", "stop_pending", "FORCE_AFTER"]

#: Seconds after which a further Ctrl-C stops a run that has not reached a batch boundary yet.
FORCE_AFTER = 2.0
_STATE: dict[str, Any] = {"armed": False, "pending": False, "since": 0.0}


def request_stop() -> bool:
    """Ask the running trainer to stop at its next batch boundary.

    Returns:
        True when a trainer with :class:`SafeInterrupt` is running and will raise ``KeyboardInterrupt``
        itself; False when none is (then the caller raises it at once).

    >>> request_stop()  # no trainer running
    False
    """
    if not _STATE["armed"]:
        return False
    _STATE.update(pending=True, since=time.monotonic())
    return True


def stop_pending(longer_than: float = 0.0) -> bool:
    """Whether a stop was asked for more than ``longer_than`` seconds ago and not yet raised."""
    return bool(_STATE["pending"]) and time.monotonic() - _STATE["since"] > longer_than


class SafeInterrupt(Callback):
    """Raises the ``KeyboardInterrupt`` that :func:`request_stop` deferred, at the start of the next batch."""

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        _STATE.update(armed=True, pending=False)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        _STATE.update(armed=False, pending=False)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        _STATE.update(armed=False, pending=False)

    def _stop_if_asked(self) -> None:
        if _STATE["pending"]:
            _STATE.update(armed=False, pending=False)
            raise KeyboardInterrupt

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._stop_if_asked()

    def on_validation_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._stop_if_asked()

    def on_test_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._stop_if_asked()

    def on_predict_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._stop_if_asked()
