"""The cyclic garbage collector around the moments a command makes, shares or leaves many objects
that live until it ends, such as an inventory's sites: collections that would only walk them are
skipped. While the command runs, nothing here changes what is freed, only when the collector
looks; at its exit, what is still alive is left to the end of the process (as Python allows:
it never promised finalizers then, and every file here is closed before a command returns)."""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic collection while the body runs; the collector is left as it was after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def frozen_for_fork() -> Iterator[None]:
    """Processes forked in the body inherit this process's objects frozen (`gc.freeze`): their
    collections never walk what they inherited, so never copy its pages either. This process
    unfreezes its own after."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def frozen_at_exit() -> None:
    """At this process's exit the objects still alive are frozen first, so the interpreter's
    last collections skip a heap it is about to free anyway (registered once however often
    called)."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
