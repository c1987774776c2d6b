"""One place times a network call (sdedit.models.timing): the job budget's calibration, the start-up warm
call and the benchmarks use it; nothing else in the server or the benchmarks synchronises CUDA itself."""
from __future__ import annotations

import re
from pathlib import Path

from sdedit.models.timing import network_input, time_call

ROOT = Path(__file__).resolve().parent.parent


def test_a_call_is_timed_and_its_input_has_the_networks_shape(tiny_vp):
    t = time_call(tiny_vp, (32, 32), repeats=3)
    assert t.first > 0 and t.median > 0 and len(t.times) == 3 and t.median in t.times
    assert tuple(network_input(tiny_vp, 48, 40, batch=2).shape) == (2, 3, 40, 48)


def test_a_latent_model_gets_its_latent(tiny_vp):
    from sdedit.models.facts import facts_of

    class Latent:  # the facts of a latent model, on the same device
        kind = "latent"

        def __getattr__(self, name):
            return getattr(tiny_vp, name)

    assert facts_of(Latent()).kind == "latent"
    assert tuple(network_input(Latent(), 64, 48).shape) == (1, 4, 6, 8)


def test_budget_calibrates_with_it(tiny_vp):
    from sdedit.api.budget import Budget

    assert Budget("cpu").calibrate(tiny_vp) > 0


def test_no_other_place_times_network_calls():
    timed_here = []
    for path in [*(ROOT / "server" / "sdedit").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]:
        if path.name == "timing.py" and path.parent.name == "models":
            continue
        if re.search(r"cuda\.synchronize\(", path.read_text()):
            timed_here.append(str(path.relative_to(ROOT)))
    assert not timed_here, f"time network calls with sdedit.models.timing: {timed_here}"
