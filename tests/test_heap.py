"""The page's C heap: free pages handed back (glibc), the arena limit, the sweeper trimming after each sweep."""

import threading

import pytest

from brainmri.ui import heap

glibc_only = pytest.mark.skipif(heap._glibc() is None, reason="glibc only")


def _resident_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@glibc_only
def test_trim_hands_back_the_free_pages_between_blocks_still_in_use():
    """120 MB in 60-kB blocks (below the size glibc maps apart), every 20th kept: freed, the resident memory stays
    up; trimmed, it comes down."""
    blocks = [bytearray(60_000) for _ in range(2000)]
    for block in blocks:
        block[::4096] = b"\x01" * len(block[::4096])  # touched: resident
    kept = blocks[::20]
    before = _resident_mb()
    del blocks
    freed = _resident_mb()
    assert heap.trim()
    assert freed - _resident_mb() > 60 and before - freed < 30  # free alone gave little back, the trim most
    assert len(kept) == 100


@glibc_only
def test_the_arena_limit_yields_to_the_environment(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert not heap.limit_arenas(2)  # glibc read the environment's at start-up: left as it is
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert heap.limit_arenas(8)  # 8: glibc's own default on a one-core machine, harmless to this test process


def test_the_sweeper_trims_after_each_sweep(monkeypatch):
    from brainmri.ui import cache

    swept, trimmed = threading.Event(), threading.Event()
    order = []
    monkeypatch.setattr(cache, "sweep", lambda *a, **k: (order.append("sweep"), swept.set()))
    monkeypatch.setattr(heap, "trim", lambda: (order.append("trim"), trimmed.set()))

    class Blocks:
        temp_file_sets, blocks = [], {}

    sweeper = cache.Sweeper(Blocks(), every=0.01, age=1).start()
    assert trimmed.wait(5)
    sweeper.stop()
    assert order[:2] == ["sweep", "trim"]
