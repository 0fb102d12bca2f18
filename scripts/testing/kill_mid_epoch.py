"""Run by tests/test_trainer.py: `train.py train ARGS` that parks itself in the middle of an epoch.

The STOP_AT-th optimiser step writes MARKER and then waits, so the test knows the run is mid-epoch
(some steps of the epoch applied in memory, none saved) when it kills the process with SIGKILL.

    python scripts/testing/kill_mid_epoch.py MARKER STOP_AT train ...
"""

import sys
import time
from pathlib import Path

import brainmri.training.trainer as training
from brainmri.commands import main

marker, stop_at, args = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
real_step = training.train_step
calls = 0


def parked_step(*a, **k):
    global calls
    calls += 1
    if calls == stop_at:
        marker.write_text(f"parked before optimiser step {calls}")
        time.sleep(600)
    return real_step(*a, **k)


training.train_step = parked_step
sys.exit(main(args))
