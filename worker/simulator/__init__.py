"""A strict local stand-in for the anyRTC recording vendor, served over loopback HTTP.

Same paths as the vendor (swap the base URLs), same codes and quirks as the guide, plus what
the real vendor cannot give a test: a clock to drive, a journal of every call, and injected
faults. Start it with ``python -m worker.simulator`` or, from Python::

    with running_simulator(upload_delay_s=0.05, transcode_delay_s=0.1) as sim:
        requests.post(sim.record_api_url + "/startrecord", params={...})

Semantics decided where the guide is silent:

* start/stop check, in order: parameters and body (``bad parameter: ...``), deleted app,
  unknown app, the client IP allowlist, then the room state.
* Query calls check 400, 247/284, 282, 281, then the budget (299); only admitted calls meet
  injected faults and only admitted calls use budget.
* A ``drop``, ``error`` or forced result on start/stop strikes *before* the room changes; a
  ``hang`` lets the call take effect and only delays the answer (the "did it happen?" case).
* ``no_file_rooms``: the vendor confirms start and stop of these rooms and never produces a
  file; ``silent_rooms``: their files are listed as usual, their callbacks never sent (each
  journaled as ``fault: silent room``).
* ``reset`` clears all state and returns the configuration to the one the simulator started
  with (so one test's faults never leak into the next), then applies the given changes.
"""

from __future__ import annotations

from worker.simulator.budget import SlidingWindowBudget
from worker.simulator.config import (
    DEFAULT_APP_ID,
    DEFAULT_VOD_TOKEN,
    FaultConfig,
    SimulatorConfig,
    apply_updates,
    build_config,
    public_config,
)
from worker.simulator.journal import Journal
from worker.simulator.responses import Outcome
from worker.simulator.server import SimulatorServer
from worker.simulator.state import SimulatorState
from worker.simulator.testing import SimulatorHandle, running_simulator

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_VOD_TOKEN",
    "FaultConfig",
    "Journal",
    "Outcome",
    "SimulatorConfig",
    "SimulatorHandle",
    "SimulatorServer",
    "SimulatorState",
    "SlidingWindowBudget",
    "apply_updates",
    "build_config",
    "public_config",
    "running_simulator",
]
