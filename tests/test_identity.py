"""Reorganising the engine must not change a single output byte (tests/identity_edits.py has the edits).

The bytes are recorded per environment (torch build, CPU architecture, torch's instruction set: float results
differ in their last bits across them); where this environment has none, that test says so and is skipped.
The fingerprints (every output pooled to 16x16) are checked on every machine. Record anew only when an output is
meant to change: `PYTHONPATH=server:shared:tests python tests/identity_edits.py --write`; add a machine's bytes
for unchanged code with `--add-machine`.
"""
from __future__ import annotations

import pytest

import identity_edits

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run():
    return identity_edits.compute(), identity_edits.recorded()


def test_fixed_edits_give_the_recorded_bytes(run):
    got, data = run
    env = identity_edits.environment()
    hashes = identity_edits.recording_for(env, data)
    if hashes is None:
        pytest.skip(f"no bytes recorded for {env} (recorded: {[r['environment'] for r in data['recordings']]}); "
                    "the fingerprints are checked")
    assert set(got) == set(hashes)
    changed = sorted(name for name, (digest, _) in got.items() if digest != hashes[name])
    assert not changed, f"outputs changed: {changed}"


def test_fixed_edits_keep_their_pictures_on_any_machine(run):
    got, data = run
    fingerprints = data["fingerprints"]
    assert set(fingerprints) == {name for name, (_, fp) in got.items() if fp is not None}
    moved = identity_edits.moved_beyond_noise(got, fingerprints)
    assert not moved, f"outputs changed beyond float noise (largest 16x16 difference per case): {moved}"
    # the budget's estimates are integers: the same bytes on every machine
    budget = [r["hashes"]["budget-estimates"] for r in data["recordings"]]
    assert all(b == got["budget-estimates"][0] for b in budget)
