"""Worker processes that never outlive their parent and stay quiet on Ctrl-C.

The workers are started under :func:`sigint_ignored` and :func:`guard_worker` runs first
in every worker of the figure pool: Ctrl-C is left to the parent (which stops the pool
and prints one line), and the worker ends when the parent process is gone, however it
ended. On Linux the kernel sends the worker SIGKILL when its
parent dies (``prctl(PR_SET_PDEATHSIG)``); everywhere, a daemon thread checks once a
second that the parent is still the same process and ends the worker when it is not.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any

__all__ = ["WATCH_SECONDS", "guard_worker", "sigint_ignored", "start_pool"]

WATCH_SECONDS = 1.0
"""How often a worker checks that its parent is alive."""

_PR_SET_PDEATHSIG = 1


def _death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl
        pass


def _parent_alive(parent: int) -> bool:
    if os.getppid() != parent:
        return False
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _watch(parent: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if not _parent_alive(parent):
            os._exit(1)


def guard_worker(parent: int) -> None:
    """Make this worker process end with ``parent`` and ignore Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _death_signal()
    if not _parent_alive(parent):
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="parent-watch", daemon=True).start()


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ctrl-C ignored inside the block (in the main thread; elsewhere nothing changes).
    Processes started inside inherit the ignored signal from their first instruction, so
    a Ctrl-C while they import prints no traceback of theirs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def start_pool(
    workers: int, initializer: Callable[..., object], initargs: tuple[Any, ...]
) -> tuple[Executor | None, str | None]:
    """A pool of ``workers`` processes (spawned, started at once with Ctrl-C ignored,
    each running ``initializer(*initargs)`` first), or ``None`` and why not.

    The processes run this interpreter again. Where they cannot be started (this user
    may not run it again, say after a change of user; no process left to fork), the
    caller works in this process instead. Checked before anything is spawned: a pool
    whose processes fail to start breaks the pipes of ``multiprocessing`` and, through
    click's handling of a broken pipe, would end the command without a word."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import spawn

    executable = os.fsdecode(spawn.get_executable())
    if not os.access(executable, os.X_OK):
        return None, (
            f"{executable}: this user cannot start the interpreter again, so no worker "
            "process was started; everything was done in this process (slower)"
        )
    pool: ProcessPoolExecutor | None = None
    try:
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=initializer,
            initargs=initargs,
        )
        with sigint_ignored():  # the workers start with Ctrl-C ignored: it is the parent's
            for _ in range(workers):
                pool.submit(int)
    except OSError as exc:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        return None, (
            f"worker processes could not be started ({exc.strerror or exc}); everything "
            "was done in this process (slower)"
        )
    return pool, None
