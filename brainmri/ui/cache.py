"""The page's own cache schedule: uploads and answers leave the disk ``age`` seconds after they were written.

Gradio's ``delete_cache`` schedule walks each set of files it registered while requests keep adding to those
sets; under steady traffic one sweep meets "set changed size during iteration", the scheduled task ends, and from
then on nothing is deleted (found by the soak benchmark: an hour of four clients). This sweeper does what that
schedule means to do on snapshots of the sets, never stops on one file, and also sweeps the page's own output
folder (answers written straight into the cache, :func:`brainmri.ui.handlers.cached_output`). What the page put
there itself stays for its life: the files a component keeps (``keep_in_cache``: the Model tab's figures) and
every file registered before the sweeper started (the examples' copies, which no component marks: deleted, the
examples showed broken thumbnails and could not be clicked after the first sweep).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from brainmri.ui import heap

log = logging.getLogger(__name__)


def registered_files(blocks) -> set[str]:
    """Every file ``blocks`` has registered in Gradio's cache so far."""
    return {file for registered in list(blocks.temp_file_sets) for file in list(registered)}


def sweep(
    blocks, age: float, folders: tuple[Path, ...] = (), now: float | None = None, keep: frozenset[str] = frozenset()
) -> int:
    """Delete what ``blocks`` registered and every file under ``folders`` written more than ``age`` seconds ago
    (and the empty folders left), except ``keep`` and what a component keeps; returns how many files went."""
    now = time.time() if now is None else now
    keep = set(keep)
    for component in list(blocks.blocks.values()):
        keep |= set(getattr(component, "keep_in_cache", ()) or ())
    removed = 0
    for registered in list(blocks.temp_file_sets):
        for file in list(registered):  # a snapshot: requests go on adding while this runs
            if file in keep:
                continue
            removed += _remove_if_old(Path(file), now, age)
            if not os.path.exists(file):
                registered.discard(file)
    for folder in folders:
        for path in sorted(Path(folder).rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_file() and str(path) not in keep:
                removed += _remove_if_old(path, now, age)
            elif path.is_dir():
                try:  # an empty answer folder, old enough that no answer is still being written into it
                    if now - path.stat().st_mtime > age and not any(path.iterdir()):
                        path.rmdir()
                except OSError:
                    pass
    return removed


def _remove_if_old(path: Path, now: float, age: float) -> int:
    try:
        if now - path.lstat().st_ctime > age:
            path.unlink()
            return 1
    except FileNotFoundError:
        pass
    except OSError as err:  # one file that cannot go does not stop the sweep
        log.warning("cache: cannot delete a file (%s)", type(err).__name__)
    return 0


class Sweeper:
    """Runs :func:`sweep` every ``every`` seconds in a daemon thread until :meth:`stop`, then hands the memory the
    requests since the last sweep freed back to the system (:func:`brainmri.ui.heap.trim`)."""

    def __init__(self, blocks, every: float, age: float, folders: tuple[Path, ...] = ()):
        self.blocks, self.every, self.age, self.folders = blocks, every, age, folders
        self.page_files = frozenset(registered_files(blocks))  # the page's own, registered when it was built
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="brainmri-cache-sweeper", daemon=True)

    def start(self) -> "Sweeper":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.every):
            try:
                sweep(self.blocks, self.age, self.folders, keep=self.page_files)
                heap.trim()
            except Exception as err:  # the schedule must outlive any one sweep
                log.warning("cache sweep failed (%s); trying again in %s s", type(err).__name__, self.every)
