"""brainmri.ui.cache: the page's own cache schedule, on snapshots, sure to keep running under traffic."""

import threading
import time
from pathlib import Path
from types import SimpleNamespace

from brainmri.ui.cache import Sweeper, sweep


def _files(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"f{i}.png" for i in range(count)]
    for path in paths:
        path.write_bytes(b"x")
    return paths


def test_sweep_deletes_old_files_and_keeps_what_the_page_keeps(tmp_path):
    uploads = _files(tmp_path / "cache" / "abc", 3)
    answers = _files(tmp_path / "cache" / "brainmri" / "report-folder", 2)
    kept = _files(tmp_path / "cache" / "figures", 1)[0]
    component = SimpleNamespace(keep_in_cache={str(kept)})
    registered = {str(p) for p in uploads} | {str(kept)}
    blocks = SimpleNamespace(blocks={1: component}, temp_file_sets=[registered])
    assert sweep(blocks, age=60, folders=(tmp_path / "cache" / "brainmri",)) == 0  # all new: nothing goes
    later = time.time() + 120
    assert sweep(blocks, age=60, folders=(tmp_path / "cache" / "brainmri",), now=later) == 5
    assert kept.exists() and not any(p.exists() for p in uploads + answers)
    assert registered == {str(kept)}  # forgotten once gone
    assert not (tmp_path / "cache" / "brainmri" / "report-folder").exists()  # the empty answer folder too


def test_sweep_survives_requests_adding_files_while_it_runs(tmp_path):
    """What stops Gradio's own schedule: a request registering a file while a sweep walks the set."""
    registered = {str(p) for p in _files(tmp_path / "cache", 2000)}
    blocks = SimpleNamespace(blocks={}, temp_file_sets=[registered])
    adding = threading.Event()

    def add():
        for i in range(2000):
            registered.add(str(tmp_path / "cache" / f"new{i}.png"))
        adding.set()

    thread = threading.Thread(target=add)
    thread.start()
    sweep(blocks, age=-1, now=time.time())  # everything is "old": the sweep walks while the other thread adds
    thread.join()
    assert adding.is_set()


def test_the_sweeper_keeps_its_schedule(tmp_path):
    old = _files(tmp_path / "brainmri", 4)
    blocks = SimpleNamespace(blocks={}, temp_file_sets=[{"/nonexistent/never-there.png"}])
    sweeper = Sweeper(blocks, every=0.05, age=-1, folders=(tmp_path / "brainmri",)).start()
    deadline = time.time() + 10
    while time.time() < deadline and any(p.exists() for p in old):
        time.sleep(0.05)
    sweeper.stop()
    assert not any(p.exists() for p in old)


def test_the_sweeper_keeps_what_the_page_registered_before_it_started(tmp_path):
    """The examples' copies: no component keeps them, yet the page needs them for its life."""
    page = _files(tmp_path / "cache" / "examples", 2)
    registered = {str(p) for p in page}
    blocks = SimpleNamespace(blocks={}, temp_file_sets=[registered])
    sweeper = Sweeper(blocks, every=60, age=-1)
    later = _files(tmp_path / "cache" / "upload", 2)  # a request's, after the page was built
    registered |= {str(p) for p in later}
    assert sweep(blocks, age=-1, keep=sweeper.page_files) == 2
    assert all(p.exists() for p in page) and not any(p.exists() for p in later)


def test_a_built_page_keeps_its_figures_and_examples(tiny_release, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    from brainmri import Predictor
    from brainmri.ui.page import EXAMPLES_DIR, build_demo

    demo = build_demo(Predictor.from_pretrained(tiny_release), examples_dir=EXAMPLES_DIR)
    sweeper = Sweeper(demo, every=60, age=-1)
    examples = [f for f in sweeper.page_files if Path(f).suffix == ".jpg"]
    assert len(examples) == len(list(EXAMPLES_DIR.glob("*")))  # the examples' copies are the page's
    sweep(demo, age=-1, keep=sweeper.page_files)
    assert all(Path(f).exists() for f in sweeper.page_files)
