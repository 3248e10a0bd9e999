"""A rich progress bar (count, rate, ETA) for every command that walks a folder of images.

The bar is drawn only from the first ``progress(done, total)`` call: the session calls it once
the files are found and the first batch is read, so a bad argument is reported on its own
(no ``0/?`` bar before the error). When every image is read the label says what the command
still does (``calibrating: computing``) instead of sitting silently at 100 %. On Ctrl-C or an
error the bar is erased, not redrawn as finished.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def image_progress(label: str, after: str = "computing") -> Iterator[Any]:
    """Yield a ``progress(done, total)`` callback drawing a bar on stderr once work starts.

    The callback also has ``phase(text)``: a status line for a step without a count
    (``gen --verify``: compiling, running), shown on a terminal only.
    """
    console = Console(file=sys.stderr)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=16),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    state: dict[str, Any] = {"bar": None, "task": None}

    def start(total: int | None, done: int = 0) -> Progress:
        # the task gets its total before the first frame: no "0/?" flash
        if state["bar"] is None:
            bar = Progress(*columns, console=console, transient=not console.is_terminal)
            state["task"] = bar.add_task(label, total=total, completed=done, rate="")
            bar.start()
            state["bar"] = bar
        return state["bar"]

    def update(done: int, total: int) -> None:
        bar = start(total, done)
        elapsed = bar.tasks[0].elapsed or 0.0
        rate = f"{done / elapsed:.0f} img/s" if elapsed > 0 else ""
        desc = f"{label}: {after}" if total and done >= total and after else label
        bar.update(state["task"], completed=done, total=total, rate=rate, description=desc)

    def phase(text: str) -> None:
        # a terminal only: logs and scripts keep their output as it was (nobody waits there)
        if console.is_terminal:
            bar = start(1)
            bar.update(state["task"], description=f"{label}: {text}")

    update.phase = phase  # type: ignore[attr-defined]
    callback: Callable[[int, int], None] = update
    try:
        yield callback
    except BaseException:
        if state["bar"] is not None:
            state["bar"].live.transient = True  # erase: a finished bar would be a lie
            state["bar"].stop()
        raise
    if state["bar"] is not None:
        state["bar"].stop()
