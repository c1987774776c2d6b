"""One prepare step (engine/canvas.py) and one set of model facts (models/facts.py) for the engine, the job
budget and the cluster's front: the budget's estimate is what the engine then runs."""
from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from sdedit.api.budget import Budget, Work
from sdedit.engine import edit
from sdedit.models.facts import ModelFacts, facts_of

ENGINE = Path(__file__).resolve().parent.parent / "server" / "sdedit" / "engine"


def painting(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    """The tiny fully convolutional (embedded-format) model, with a 32 px native size and its edge margin."""
    from sdedit.models import load_model
    from tiny_models import make_unshuffle_folder

    model = load_model(str(make_unshuffle_folder(tmp_path_factory.mktemp("m") / "tiny-canvas")), "cpu")
    model.native_size = 32
    return model


def _imports(path: Path) -> set[str]:
    """sdedit.engine modules a file imports at run time, at the top or inside functions (not the ones under
    `if TYPE_CHECKING:`, which never run)."""
    found = set()

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                walk(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sdedit.engine"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found.update(n for n in names if (ENGINE / (n.split(".")[-1] + ".py")).is_file())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("sdedit.engine."))
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(ast.parse(path.read_text()))
    return {n for n in found if n.count(".") == 2}


def test_no_import_circle_in_the_engine():
    graph = {f"sdedit.engine.{p.stem}": _imports(p) - {f"sdedit.engine.{p.stem}"} for p in ENGINE.glob("*.py")
             if p.stem != "__init__"}

    def visit(node: str, path: tuple) -> None:
        assert node not in path, f"import circle: {' -> '.join(path + (node,))}"
        for nxt in graph.get(node, ()):
            visit(nxt, path + (node,))

    for start in graph:
        visit(start, ())


def test_every_model_declares_every_fact(tiny_vp, conv_model):
    for model in (tiny_vp, conv_model):
        facts = facts_of(model)
        for f in fields(ModelFacts):
            if f.name != "schedule_length":
                assert hasattr(model, f.name), f"{type(model).__name__} does not declare {f.name}"
        assert facts.schedule_length == len(model.alphas_cumprod)
        assert facts_of(facts) is facts  # what a cluster replica sends is read as it is
    assert facts_of(tiny_vp).native_size == 32 and facts_of(tiny_vp).kind == "pixel"


@pytest.mark.parametrize("size", [(36, 30), (80, 60), (120, 90)])
def test_budget_estimates_what_a_fixed_size_model_runs(tiny_vp, size):
    """A 32 px checkpoint edits an 80x60 canvas in two stages at 80x80: the budget counts that, not 32x32."""
    budget = Budget("cpu", max_work=10**12)
    budget.learn_model(tiny_vp)
    res = edit(tiny_vp, painting(*size), t0=0.5, sde="ode", steps=3, seed=1, samples=2)
    work = budget.estimate(tiny_vp.id, tiny_vp.resolution, *size, 0.5, "ode", 3, 2)
    assert work == Work(*res.working_size, 2, res.steps)


@pytest.mark.parametrize("size", [(40, 30), (100, 72)])
def test_budget_estimates_what_a_convolutional_model_runs(conv_model, size):
    budget = Budget("cpu", max_work=10**12)
    budget.learn_model(conv_model)
    res = edit(conv_model, painting(*size), t0=0.5, sde="ode", steps=3, seed=1)
    assert budget.estimate(conv_model.id, None, *size, 0.5, "ode", 3, 1) == Work(*res.working_size, 1, res.steps)


def test_budget_without_a_sampler_uses_the_models_default(conv_model):
    declared, conv_model.default_sde = conv_model.default_sde, "ode"  # 20 steps; "vp" would be its 6
    try:
        budget = Budget("cpu", max_work=10**12)
        budget.learn_model(conv_model)
        res = edit(conv_model, painting(40, 30), t0=0.5, seed=1)
        assert budget.estimate(conv_model.id, None, 40, 30, 0.5, None, None, 1) == Work(*res.working_size, 1,
                                                                                        res.steps)
    finally:
        conv_model.default_sde = declared


def test_the_cluster_front_estimates_as_the_replica_does(conv_model):
    """The replica sends its model's facts; the front's estimate for a two-stage canvas is the replica's."""
    from sdedit.cluster.backend import RayBackend
    from sdedit.cluster.replica import BudgetRelay

    relay = BudgetRelay("cpu")
    relay.learn_model(conv_model)
    front = SimpleNamespace(budget=Budget("cpu", None, 60.0))
    RayBackend._learn(front, relay.take())
    asked = dict(resolution=None, width=100, height=72, t0=0.5, sde="ode", steps=3, samples=1)
    there = relay._budget.estimate(conv_model.id, **asked)
    assert front.budget.estimate(conv_model.id, **asked) == there
    assert there.steps > 3  # two stages
