"""The Ray pool's job budget without Ray: what a replica's BudgetRelay learns, replayed on the front's Budget,
gives the front the replica's own estimate and limit (so too-big jobs are refused before they are queued)."""
from __future__ import annotations

from types import SimpleNamespace

from sdedit.api.budget import Budget
from sdedit.cluster.backend import RayBackend
from sdedit.cluster.replica import BudgetRelay


def test_the_front_learns_what_the_replica_learned(tiny_vp):
    relay = BudgetRelay("cpu")
    relay.learn_model(tiny_vp)
    rate = relay.calibrate(tiny_vp)
    assert rate and rate > 0
    front = SimpleNamespace(budget=Budget("cpu", None, 60.0))
    assert front.budget.limit(tiny_vp.id)[0] == int(60.0 / 1e-6)  # before: the cautious CPU guess
    RayBackend._learn(front, relay.take())
    assert relay.take() == []  # each lesson is sent once
    replica_budget = relay._budget
    replica_budget.max_job_s = 60.0
    assert front.budget.limit(tiny_vp.id) == replica_budget.limit(tiny_vp.id)
    asked = dict(resolution=None, width=48, height=40, t0=0.5, sde="vp", steps=None, samples=2)
    assert front.budget.estimate(tiny_vp.id, **asked) == replica_budget.estimate(tiny_vp.id, **asked)
