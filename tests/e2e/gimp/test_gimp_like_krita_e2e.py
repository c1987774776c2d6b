"""GIMP 3 end to end: the plug-in's dialog reads like the Krita plugin's (issue 20, item 8) and a group layer
is edited as its merged picture, as in Krita (item 9). Real GIMP, real GTK widgets, a real server."""
from __future__ import annotations

import pytest

from gimprun import GimpRun, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def report(gimp_root, server, xdisplay):
    run = GimpRun(gimp_root, "gimp_batch_like_krita.py", {
        "server_url": server, "down_url": "http://127.0.0.1:%d" % free_port(), "text_model": "tiny-sd1"},
        display=xdisplay)
    try:
        yield run.finish()
    finally:
        run.cleanup()


def test_dialog_reads_like_kritas(report):
    seen = report["dialog"]["initial"]
    labels = seen["labels"]
    for words in ("Strength (t0):", "faithful", "realistic", "Samples:", "Steps:", "Seed:", "Model:", "Prompt:"):
        assert words in labels, (words, labels)
    assert seen["t0_sentence"] == "t0 = 0.35 — faithful: keeps shapes and colours, cleans the strokes"
    assert seen["steps_text"] == "automatic" and seen["seed_text"] == "random"
    assert seen["server_label"].startswith("Connected: "), seen["server_label"]
    assert seen["models"][0] == "Server default" and any(m.startswith("tiny-sd1 (") and "prompt" in m
                                                         for m in seen["models"]), seen["models"]
    assert seen["model"] == "" and seen["prompt_sensitive"] == [False, False, False]
    assert seen["text_note"] == "The prompt fields are for models that take text (Stable Diffusion); this one does not."


def test_dialog_follows_the_chosen_model_and_writes_the_procedures_arguments(report):
    dialog = report["dialog"]
    text = dialog["text_model"]
    assert text["t0_sentence"] == "t0 = 0.85 — very realistic: keeps little of your strokes"
    assert text["prompt_sensitive"] == [True, True, True]
    assert text["text_note"] == "This model takes a prompt; empty = the plain (unconditional) edit."
    assert dialog["config"] == {"t0": 0.85, "sde": "default", "samples": 1, "steps": 12, "seed": 77,
                                "model": "tiny-sd1", "prompt": "a lake at dusk",
                                "server-url": dialog["config"]["server-url"]}
    assert dialog["back_to_special"] == ["automatic", "random", -1]


def test_dialog_without_a_running_server_says_it_is_started_by_the_edit(report):
    down = report["dialog"]["down"]
    assert down["server_label"].startswith("No SDEdit server answers at http://127.0.0.1:")
    assert down["server_label"].endswith("yet: it is started when the edit begins.")
    assert down["models"] == ["Server default", "remembered-model"] and down["model"] == "remembered-model"
    assert down["prompt_sensitive"] == [False, False, False]
    assert report["dialog"]["down_values"]["model"] == "remembered-model"


def test_group_is_edited_as_its_merged_picture_like_in_krita(report):
    group = report["group"]
    assert group["status"] == "success", group["error"]
    assert group["top_level"][:2] == ["SDEdit t0=0.60 VP #1 seed=13", "Sky"], group["top_level"]
    assert group["group_children"] == ["Dabs", "Strokes"]
    assert group["merged_differs_from_lower"] and group["outside_equal_merged"]
    assert group["inside_changed"] > 0.5 * 24 * 16


def test_a_fully_transparent_layer_is_refused_as_in_krita(report):
    empty = report["empty"]
    assert empty["status"] == "execution-error" and empty["layers"] == ["Ink"], empty
    assert empty["error"] == ("The layer \u201cInk\u201d is empty (fully transparent), so SDEdit has nothing to "
                              "repaint: paint some strokes there first.")
