"""End to end in the real Krita (Debian's krita under Xvfb): menu, dialog, edits, undo, cancel, errors.

A harness plugin (harness/sdedit_e2e) drives the installed SDEdit plugin against a real `sdedit serve`
with a tiny model, dumps layer pixels as PNGs and a JSON report; every judgement is made here.
Run: `pytest -m e2e tests/e2e/krita -s` (or .ci/krita.sh). SDEDIT_UPDATE_DOCS=1 refreshes
docs/krita-dialog.png from the screenshot the harness takes.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from krita_runner import ROOT, krita_missing_reason, run_krita  # noqa: E402
from sdedit_server_process import ServerProcess, free_port  # noqa: E402

from sdedit_client.png import decode_png  # noqa: E402
from sdedit.engine.seam import edit_mask  # noqa: E402
from sdedit_client.server_record import write_record  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def krita_run(request, tmp_path_factory):
    reason = krita_missing_reason()
    if reason:
        print("SKIP: " + reason)
        pytest.skip(reason)
    tiny_vp_dir = request.getfixturevalue("tiny_vp_dir")
    # SDEDIT_E2E_OUT keeps the artifacts (report, PNGs, logs) somewhere pytest will not rotate away
    work = Path(os.environ["SDEDIT_E2E_OUT"]) if os.environ.get("SDEDIT_E2E_OUT") else tmp_path_factory.mktemp("krita-e2e")
    if work.exists() and os.environ.get("SDEDIT_E2E_OUT"):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    # the models folder: the tiny pixel model and a tiny Stable Diffusion 1.x pipeline folder (takes text)
    models = tmp_path_factory.mktemp("krita-e2e-models")
    (models / tiny_vp_dir.name).symlink_to(tiny_vp_dir, target_is_directory=True)
    from tiny_sd import make_sd_folder

    make_sd_folder(models / "tiny-sd1", "sd1")
    # a fake Hugging Face Hub on loopback for the Models panel's download (the server reaches it by HF_ENDPOINT)
    from fake_hub import FakeHub
    from tiny_lora import write_diffusers_lora

    hub = FakeHub()
    hub.repos["tiny-org/krita-lora"] = {"pytorch_lora_weights.safetensors":
                                        write_diffusers_lora(work / "lora-src", "sd1").read_bytes()}
    hub.throttle = 0.1  # 4 KiB every 100 ms (about 1.5 s): the progress bar has time to move
    hub.start()
    slow = models / "tiny-vp-slow-live"  # live mode's off switch needs a live job that runs for seconds
    shutil.copytree(tiny_vp_dir, slow)
    (slow / "sdedit.json").write_text(json.dumps({"live": {"sde": "vp", "steps": 600, "size": 32}}))
    # the default named by id: the registry flags a default given as a path only when its listed path is the
    # same, and the listed one here is the symlink
    server = ServerProcess(tiny_vp_dir, work / "server.log", extra_env={
        "SDEDIT_MODELS_DIR": str(models), "SDEDIT_DEFAULT_MODEL": tiny_vp_dir.name, "HF_ENDPOINT": hub.url,
        "HF_HOME": str(work / "hf-home")}).start()
    # The installation the plugin may start a server from (as install.py records it), with the tiny model.
    record = write_record(sys.executable, root=str(ROOT), path=str(work / "server-record.json"), env={
        "PYTHONPATH": os.pathsep.join([str(ROOT / "server"), str(ROOT / "shared")]),
        "SDEDIT_DEFAULT_MODEL": str(tiny_vp_dir), "SDEDIT_MODELS_DIR": str(tiny_vp_dir.parent),
        "OMP_NUM_THREADS": "1"})
    autostart_port, restart_port = free_port(), free_port()
    started = {}
    try:
        config = {"server_url": server.url, "down_url": "http://127.0.0.1:%d" % free_port(),
                  "out_dir": str(work / "out"), "timeout_s": 900, "record": record,
                  "autostart_url": "http://127.0.0.1:%d" % autostart_port, "text_model": "tiny-sd1",
                  "restart_url": "http://127.0.0.1:%d" % restart_port, "pull_source": "tiny-org/krita-lora",
                  "slow_model": "tiny-vp-slow-live"}
        if os.environ.get("SDEDIT_E2E_CASES"):  # while developing: only these harness cases (pair with -k)
            config["cases"] = os.environ["SDEDIT_E2E_CASES"].split(",")
        report, log, seconds = run_krita(work / "home", config, timeout=960)
    finally:
        server.stop()
        hub.stop()
        started = stop_autostarted(work / "home", autostart_port)
        restarted = stop_autostarted(work / "home", restart_port)
    print("\nKrita e2e: %.1f s in Krita (%s)" % (seconds, ", ".join(
        "%s %.1f s" % (name, case.get("seconds", -1)) for name, case in report.get("cases", {}).items())))
    assert report.get("finished"), "the harness did not finish; Krita log tail:\n%s\nserver log tail:\n%s" % (
        log[-4000:], server.log_tail())
    report["server_log"] = server.log_tail(200000)
    report["tiny_model"] = str(tiny_vp_dir)
    report["autostarted"] = started
    report["restarted"] = restarted
    report["models_dir"] = str(models)
    return report, Path(config["out_dir"]), server.url


def stop_autostarted(home: Path, port: int) -> dict:
    """End the server the plugin started (its state file names the pid); what was found, for the tests."""
    state = home / ".cache" / "sdedit" / ("server-%d.json" % port)
    if not state.exists():
        return {}
    found = json.loads(state.read_text())
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/v1/health" % port, timeout=5) as answer:
            found["health"] = json.load(answer).get("status")
    except OSError as error:
        found["health"] = str(error)
    try:
        os.kill(int(found["pid"]), signal.SIGTERM)
        for _ in range(100):
            os.kill(int(found["pid"]), 0)
            time.sleep(0.1)
        os.kill(int(found["pid"]), signal.SIGKILL)
    except (OSError, ValueError, KeyError):
        pass
    return found


def _case(krita_run, name):
    report, out, url = krita_run
    case = report["cases"][name]
    assert "exception" not in case, case["exception"]
    return case, out, url


def _png(out, name):
    return decode_png((out / name).read_bytes())


def _grown(mask: bytes, width: int, height: int, t0: float) -> bytes:
    """The mask the server edits with: a hard selection grown by its feathered band (docs/design.md §4)."""
    import numpy as np

    return edit_mask(np.frombuffer(mask, np.uint8).reshape(height, width), t0).tobytes()


def _pixels(data):
    return [bytes(data[i:i + 4]) for i in range(0, len(data), 4)]


def test_action_is_in_the_filters_menu(krita_run):
    case, _, _ = _case(krita_run, "menu")
    assert [m.lower() for m in case["menus_with_action"]] == ["filter"], case
    assert case["registered"] and case["action_text"] == "SDEdit…"


def test_masked_edit_adds_k_named_layers_changing_only_the_selection(krita_run):
    case, out, _ = _case(krita_run, "masked")
    assert case["report"]["ok"], case["report"]
    top = case["tree"]
    names = [n["name"] for n in top]
    group = top[names.index("Background") + 1]  # right above the source layer
    assert group["name"] == "SDEdit t0=0.60 VP x2" and group["type"] == "grouplayer"
    children = group["children"]
    assert sorted(c["name"] for c in children) == ["SDEdit t0=0.60 VP #1 seed=7", "SDEdit t0=0.60 VP #2 seed=8"]
    assert children[-1]["name"].endswith("#1 seed=7")  # #1 on top, the one you see
    assert all(c["type"] == "paintlayer" and c["bounds"] == [0, 0, 96, 64] for c in children)

    w, h, source = _png(out, "masked-source.png")
    _, _, mask_rgba = _png(out, "masked-mask.png")
    mask = mask_rgba[0::4]
    assert sum(1 for m in mask if m == 255) == 48 * 36 and sum(1 for m in mask if m not in (0, 255)) == 0
    src = _pixels(source)
    grown = _grown(mask, w, h, 0.6)
    assert sum(1 for g in grown if g) > sum(1 for m in mask if m)  # the selection grows beyond its outline
    results = []
    for item in case["results"]:
        _, _, rgba = _png(out, item["png"])
        px = _pixels(rgba)
        outside_changed = sum(1 for i in range(w * h) if not grown[i] and px[i] != src[i])
        inside_changed = sum(1 for i in range(w * h) if mask[i] and px[i] != src[i])
        assert outside_changed == 0, item["name"]
        assert inside_changed > 0.5 * 48 * 36, (item["name"], inside_changed)
        results.append(rgba)
    assert len(results) == 2 and results[0] != results[1]


def test_insertion_is_one_undo_step(krita_run):
    case, _, _ = _case(krita_run, "masked")
    before = [n["name"] for n in case["tree"]]
    assert case["after_undo"] == [n for n in before if n != "SDEdit t0=0.60 VP x2"]
    assert case["after_redo"] == before


def test_16bit_layer_with_offset_gets_a_same_size_16bit_result(krita_run):
    case, out, _ = _case(krita_run, "u16")
    assert case["report"]["ok"], case["report"]
    names = [n["name"] for n in case["tree"]]
    assert names[names.index("Strokes") + 1] == "SDEdit t0=0.40 VE #1 seed=3"
    result = case["tree"][names.index("Strokes") + 1]
    assert case["source_depth"] == "U16" and result["depth"] == "U16" and result["type"] == "paintlayer"
    assert case["source_rect"] == [30, 10, 40, 36]
    assert result["bounds"][0:2] == [30, 10] and result["bounds"][2] <= 40 and result["bounds"][3] <= 36
    w, h, source = _png(out, "u16-source.png")
    _, _, edited = _png(out, "u16-result.png")
    changed = sum(1 for a, b in zip(_pixels(source), _pixels(edited)) if a != b)
    assert changed > 0.3 * w * h
    assert case["after_undo"] == ["Background", "Strokes"]  # one undo step, colour conversion included


def test_float_linear_layer_is_converted_both_ways(krita_run):
    case, out, _ = _case(krita_run, "f32")
    assert case["report"]["ok"], case["report"]
    assert case["source_space"] == ["RGBA", "F32", "sRGB-elle-V2-g10.icc"]
    assert case["result_space"] == case["source_space"]
    names = [n["name"] for n in case["tree"]]
    assert names[names.index("Background") + 1] == "SDEdit t0=0.50 VP #1 seed=5"
    w, h, source = _png(out, "f32-source.png")
    _, _, edited = _png(out, "f32-result.png")
    mask = _png(out, "f32-mask.png")[2][0::4]
    # the strokes really are colours, not a washed-out linear-as-sRGB misreading
    src = _pixels(source)
    assert {bytes((20, 60, 200, 255)), bytes((220, 40, 30, 255)), bytes((40, 160, 40, 255))} <= set(src)
    grown = _grown(bytes(mask), w, h, 0.5)
    outside = [max(abs(a - b) for a, b in zip(p, q)) for i, (p, q) in enumerate(zip(src, _pixels(edited)))
               if not grown[i]]
    assert outside and max(outside) <= 1  # 8-bit -> float -> 8-bit round trip only
    inside = sum(1 for i, (p, q) in enumerate(zip(src, _pixels(edited))) if mask[i] and p != q)
    assert inside > 0.5 * 32 * 32


def test_cancel_stops_the_job_and_adds_nothing(krita_run):
    case, _, _ = _case(krita_run, "cancel")
    assert case["report"] is not None, "no answer %.0f s after Cancel" % case["cancel_seconds"]
    assert [text.replace("&", "") for text in case["cancel_button"]] == ["Cancel"]
    assert case["report"]["kind"] == "cancelled" and case["report"]["message"] == "The edit was cancelled."
    assert case["layers_after"] == case["layers_before"]
    assert case["cancel_seconds"] < 15
    # the server stopped the job itself (DELETE), long before its 1000 steps would have finished
    report = krita_run[0]
    lines = [line for line in report["server_log"].splitlines() if "steps=1000" in line and "samples=4" in line]
    assert len(lines) == 1 and "state=cancelled" in lines[0], lines
    seconds = float(re.search(r"seconds=([0-9.]+)", lines[0]).group(1))
    assert seconds < 30, lines[0]


def test_closing_the_image_during_a_job_cancels_it_at_once(krita_run):
    case, _, _ = _case(krita_run, "closed")
    assert case["progress_before_close"], case
    assert case["report"]["kind"] == "closed", case["report"]
    assert case["report"]["message"] == "The image was closed, so SDEdit stopped its job."
    assert case["report"]["layers"] == []
    assert case["close_seconds"] < 5 and case["progress_dialogs"] == [], case
    # the server stopped the job (DELETE), long before its 3 x 997 steps would have finished
    lines = [line for line in krita_run[0]["server_log"].splitlines() if "steps=997" in line and "samples=3" in line]
    assert len(lines) == 1 and "state=cancelled" in lines[0], lines
    assert float(re.search(r"seconds=([0-9.]+)", lines[0]).group(1)) < 30, lines[0]


def test_local_server_down_without_installation_is_one_sentence_that_says_how_to_start_it(krita_run):
    case, _, _ = _case(krita_run, "server_down")
    message = case["report"]["message"]
    assert case["report"]["kind"] == "error" and "\n" not in message and "Traceback" not in message
    # a local URL: the plugin tries to start the server, and with no installation recorded says what to do
    assert message.startswith("Cannot start the SDEdit server: no installation is recorded in "), message
    assert message.endswith("start the server yourself with: sdedit serve.") and "`" not in message
    assert not any(name.startswith("SDEdit") for name in case["layers_after"])


def test_dialog_from_the_menu_action_remembers_values_and_runs(krita_run):
    case, out, url = _case(krita_run, "dialog")
    dialog = case["dialog"]
    values = dialog["values"]
    assert values["server_url"] == url and values["t0"] == 0.45 and values["seed_mode"] == "fixed"
    assert values["seed"] == 21 and values["steps"] == 4
    assert dialog["server_label"].startswith("Connected: ")
    assert any("tiny" in text for text in dialog["models"][1:])
    assert not dialog.get("message_boxes"), dialog.get("message_boxes")
    # what is reused is said, the sampler offers the model's default first, no prompt for a model without text
    assert dialog["remembered"] == "Remembered from your last run: 4 steps, fixed seed 21, 1 sample, VP."
    assert dialog["sde_items"][0] == "Model default" and len(dialog["sde_items"]) == 7  # + lcm, euler_a (live mode)
    assert dialog["prompt_enabled"] is False and dialog["result_full_copy"] is False
    assert case["report"]["ok"], case["report"]
    assert "SDEdit t0=0.45 VP #1 seed=21" in case["layers_after"]
    width, height, _ = decode_png((out / "krita-dialog.png").read_bytes())
    assert width >= 300 and height >= 200
    if os.environ.get("SDEDIT_UPDATE_DOCS") == "1":
        shutil.copy2(out / "krita-dialog.png", ROOT / "docs" / "krita-dialog.png")


def test_interactive_run_without_server_shows_one_sentence_in_a_message_box(krita_run):
    case, _, _ = _case(krita_run, "dialog_server_down")
    dialog = case["dialog"]
    # the dialog says the local server is started when the edit begins; the run says why it could not be
    assert dialog["server_label"] == "No SDEdit server answers at %s yet: it is started when the edit begins." \
        % dialog["values"]["server_url"]
    boxes = dialog.get("message_boxes")
    assert boxes and len(boxes) == 1, boxes
    assert boxes[0].startswith("Cannot start the SDEdit server: no installation is recorded in ")
    assert not any(name.startswith("SDEdit") for name in case["layers_after"])


def test_defaults_button_resets_remembered_steps_and_seed(krita_run):
    case, _, _ = _case(krita_run, "dialog_server_down")
    dialog = case["dialog"]
    assert dialog["remembered"] == "Remembered from your last run: 4 steps, fixed seed 5, 2 samples, VE."
    after = dialog["after_defaults"]
    assert (after["steps"], after["seed_mode"], after["samples"], after["sde"], after["t0"]) == (0, "random", 1, "", 0.5)
    assert after["server_url"] == dialog["values"]["server_url"]  # the server address is kept
    assert dialog["remembered_after_defaults"].startswith("Defaults:")


def test_selection_only_result_layer_has_the_selection_as_alpha(krita_run):
    """Default result layer: transparent outside the selection, the soft edge as alpha, and over the source
    it shows what the server composited; the model's default sampler and no prompt (no text model)."""
    case, out, _ = _case(krita_run, "selection_only")
    assert case["report"]["ok"], case["report"]
    names = [n["name"] for n in case["tree"]]
    # no sampler in the name (model default), no prompt (the tiny model takes no text)
    assert names[names.index("Background") + 1] == "SDEdit t0=0.50 #1 seed=11"
    assert "prompt" not in case["report"]["params"] and case["report"]["params"]["sde"] is None
    w, h, source = _png(out, "selonly-source.png")
    mask = _png(out, "selonly-mask.png")[2][0::4]
    _, _, result = _png(out, "selonly-result.png")
    _, _, projection = _png(out, "selonly-projection.png")
    soft = [i for i in range(w * h) if 0 < mask[i] < 255]
    assert len(soft) > 500 and sum(1 for m in mask if m == 255) == 40 * 32
    alpha = result[3::4]
    assert all(alpha[i] == 0 for i in range(w * h) if mask[i] == 0)
    assert all(alpha[i] == 255 for i in range(w * h) if mask[i] == 255)
    assert max(abs(alpha[i] - mask[i]) for i in soft) <= 1
    src, proj = _pixels(source), _pixels(projection)
    assert all(src[i] == proj[i] for i in range(w * h) if mask[i] == 0)
    inside_changed = sum(1 for i in range(w * h) if mask[i] == 255 and src[i] != proj[i])
    assert inside_changed > 0.5 * 40 * 32


def test_group_is_edited_as_its_merged_picture_like_in_gimp(krita_run):
    """A group is edited as what it shows (its children merged), as the GIMP plug-in does; the result goes
    right above the group. Outside the selection the result is exactly the merged picture."""
    case, out, _ = _case(krita_run, "group_active")
    assert case["active_type"] == "grouplayer" and case["edited"] == "Sky", case
    assert case["message"] is None and case["report"]["ok"], (case["message"], case["report"])
    names = [n["name"] for n in case["tree"]]
    assert names[names.index("Sky") + 1] == "SDEdit t0=0.60 VP #1 seed=13", names
    w, h, merged = _png(out, "group-merged.png")
    _, _, lower = _png(out, "group-lower.png")
    _, _, result = _png(out, "group-result.png")
    mask = _png(out, "group-mask.png")[2][0::4]
    merged_px, lower_px, result_px = _pixels(merged), _pixels(lower), _pixels(result)
    grown = _grown(bytes(mask), w, h, 0.6)  # the server grows the hard selection by a feathered band
    outside = [i for i in range(w * h) if not grown[i]]
    assert any(merged_px[i] != lower_px[i] for i in outside)  # the merged picture is not one child's
    assert all(result_px[i] == merged_px[i] for i in outside)
    assert sum(1 for i in range(w * h) if mask[i] and result_px[i] != merged_px[i]) > 0.5 * 24 * 16
    assert case["vector_message"] == ("SDEdit works on a paint layer or a group, but the active layer is a vector "
                                      "layer: select a paint layer or a group in the Layers docker.")


def test_docker_is_in_settings_dockers_and_previews_live(krita_run):
    case, out, _ = _case(krita_run, "docker")
    assert case["dockers"] == 1 and case["title"] == "SDEdit"
    assert case["started"] and case["report"]["ok"], case["report"]
    # the preview changed at least twice while the 20-step job ran (three different pictures)
    assert len(case["preview_keys"]) >= 3, case["preview_keys"]
    assert case["results"] == ["#1 seed 17", "#2 seed 18"]
    assert len(case["history"]) == 1 and "t0=0.60 default sampler, 20 step(s), seeds 17-18" in case["history"][0]
    for name in ("krita-docker-running.png", "krita-docker-done.png"):
        width, height, _ = decode_png((out / name).read_bytes())
        assert width >= 200 and height >= 300, name
    if os.environ.get("SDEDIT_UPDATE_DOCS") == "1":
        for name in ("krita-docker-running", "krita-docker-done"):
            shutil.copy2(out / (name + "-window.png"), ROOT / "docs" / (name + ".png"))


def test_docker_apply_is_one_layer_and_one_undo_step_apply_all_is_a_group(krita_run):
    case, out, _ = _case(krita_run, "docker")
    layers = lambda names: [n for n in names if n != "Selection Mask"]  # the global selection is a node too
    before = layers(case["layers_before"])
    assert case["applied"] == ["SDEdit t0=0.60 #2 seed=18"]
    assert layers(case["after_apply"]) == before + ["SDEdit t0=0.60 #2 seed=18"]
    assert layers(case["after_undo"]) == before
    top = [n for n in case["tree_after_all"] if n["name"] != "Selection Mask"]
    group = top[-1]
    assert group["name"] == "SDEdit t0=0.60 x2" and group["type"] == "grouplayer"
    assert sorted(c["name"] for c in group["children"]) == ["SDEdit t0=0.60 #1 seed=17", "SDEdit t0=0.60 #2 seed=18"]
    # the applied layer holds only the selection (the default result layer), grown by the server's feathered
    # band: opaque inside, fading out beyond the outline, transparent past the band
    w, h, rgba = _png(out, "docker-applied.png")
    alpha = rgba[3::4]
    selected = bytes(255 if 24 <= x < 104 and 16 <= y < 80 else 0 for y in range(h) for x in range(w))
    grown = _grown(selected, w, h, 0.6)
    inside = [alpha[i] for i in range(w * h) if selected[i]]
    assert set(inside) == {255}
    assert all(alpha[i] == 0 for i in range(w * h) if not grown[i])
    assert max(abs(alpha[i] - grown[i]) for i in range(w * h)) <= 1 and any(0 < a < 255 for a in alpha)


def test_docker_run_again_reproduces_the_pixels(krita_run):
    case, _, _ = _case(krita_run, "docker")
    assert case["run_again_started"] and case["again_is_new_entry"]
    assert case["again_seeds"] == case["first_seeds"] == [17, 18]
    assert case["again_identical"], case["again_bytes"]
    assert len(case["history_after"]) == 2


def test_local_server_is_started_when_none_runs(krita_run):
    case, _, _ = _case(krita_run, "autostart")
    assert case["statuses"] and case["statuses"][0] == "Starting the SDEdit server…", case["statuses"]
    assert case["report"]["ok"], case["report"]
    assert "SDEdit t0=0.50 #1 seed=9" in case["layers_after"]
    started = krita_run[0]["autostarted"]
    assert started.get("health") == "ok" and started.get("url", "").endswith(":%s" % started["url"].rsplit(":", 1)[1])


def test_prompt_fields_follow_the_model_and_the_prompt_goes_with_the_job(krita_run):
    case, _, _ = _case(krita_run, "prompt")
    assert case["enabled_default_model"] is False and case["enabled_text_model"] == [True, True, True]
    first, second = case["reports"]
    assert first["ok"] and second["ok"], (first, second)
    assert first["params"]["prompt"] == "a lake at dusk" and first["params"]["negative_prompt"] == "blurry"
    assert first["params"]["guidance"] == 5.0 and first["params"]["model"] == "tiny-sd1"
    assert first["layers"] == ["SDEdit t0=0.60 \u201ca lake at dusk\u201d #1 seed=5"]
    assert second["layers"] == ["SDEdit t0=0.60 \u201ca red barn in snow\u201d #1 seed=5"]
    assert case["results_differ"], "another prompt with the same seed gave the same pixels"


def test_docker_apply_adds_the_clicked_thumbnail(krita_run):
    """A real click on the 3rd thumbnail, then on Apply: the added layer holds result #3's pixels."""
    case, out, _ = _case(krita_run, "docker_pick")
    assert case["started"] and case["report"]["ok"], case["report"]
    assert case["results"] == ["#1 seed 23", "#2 seed 24", "#3 seed 25"]
    assert case["row_before"] == 0 and case["row_after_click"] == 2
    assert case["added"] == ["SDEdit t0=0.60 DDIM #3 seed=25"], case["added"]
    applied = _png(out, "pick-applied.png")[2]
    results = [_png(out, "pick-result-%d.png" % k)[2] for k in (1, 2, 3)]
    assert [applied == r for r in results] == [False, False, True]


def test_docker_history_shows_the_steps_that_ran_when_steps_are_automatic(krita_run):
    case, _, _ = _case(krita_run, "docker_pick")
    assert case["report"]["params"]["steps"] is None and case["report"]["ran"] == {"steps": 20, "sde": "ddim"}
    assert len(case["history"]) >= 1 and "t0=0.60 DDIM, 20 step(s), seeds 23-25" in case["history"][-1], \
        case["history"]
    assert "steps 20 (the model's default)" in case["settings_text"], case["settings_text"]


def test_empty_layer_is_refused_before_any_work(krita_run):
    case, _, _ = _case(krita_run, "empty_layer")
    assert case["bounds"] == [0, 0, 40, 32], case  # erased, not deleted: Krita still sees the strokes' area
    whole, selected = case["runs"]
    assert whole == {"started": False, "message": "The layer \u201c%s\u201d is empty (fully transparent), so "
                     "SDEdit has nothing to repaint: paint some strokes there first." % case["active"]}, whole
    assert selected == {"started": False, "message": "The layer \u201c%s\u201d is empty (fully transparent) "
                        "inside the selection, so SDEdit has nothing to repaint: paint some strokes there first."
                        % case["active"]}, selected
    assert case["docker_started"] is False and case["docker_status"] == selected["message"]
    assert case["layers_after"] == case["layers_before"]


def test_docker_says_connected_once_the_server_it_started_is_up(krita_run):
    case, _, _ = _case(krita_run, "docker_server")
    assert case["label_before"].startswith("No SDEdit server answers at http://127.0.0.1:"), case["label_before"]
    assert case["started"] and case["report"]["ok"], case["report"]
    assert case["label_after"].startswith("Connected: "), case["label_after"]
    assert "DDIM, 20 step(s)" in case["history"][-1], case["history"]


def test_server_killed_mid_job_says_it_stopped_and_offers_to_start_it_again(krita_run):
    case, _, _ = _case(krita_run, "server_stopped")
    assert case.get("killed"), case
    report = case["report"]
    assert report["kind"] == "server_stopped", report
    log = case["state_before"]["log"]
    assert report["message"] == "The SDEdit server stopped during the edit; the last line of its log %s is: '%s'." % (
        log, case["log_last_line"]), (report["message"], case["log_last_line"])
    assert "sdedit serve" not in report["message"]
    box = case["boxes"][0]
    assert box["name"] == "sdedit_server_stopped" and box["text"] == report["message"]
    assert "Start the server again" in box["buttons"] and "Close" in box["buttons"], box
    assert len(case["boxes"]) == 1, case["boxes"]  # the repeated edit succeeded: no other message
    # pressing it started a new server (another process) and the edit ran again to the end
    assert case["state_after"]["pid"] != case["state_before"]["pid"]
    assert case["retry_report"] and case["retry_report"]["ok"], case["retry_report"]
    assert "SDEdit t0=1.00 VP #1 seed=41" in case["layers_after"]
    assert krita_run[0]["restarted"].get("health") == "ok"


def test_models_panel_downloads_from_the_hub_with_progress_and_removes(krita_run):
    case, _, _ = _case(krita_run, "models_panel")
    assert any(line.startswith("sd15") for line in case["catalogue"]), case["catalogue"]
    assert case["started"], case
    assert case["last_pull"]["state"] == "done", case
    assert any(0 < value < 1000 for value in case["progress_seen"]), case["progress_seen"]  # visible progress
    assert case["status_while"] and case["status_while"].startswith("Downloading tiny-org/krita-lora"), case
    assert case["status"] == "Installed krita-lora.", case
    assert "krita-lora  (LoRA)" in case["installed"], case
    assert case["remove_started"] and "krita-lora  (LoRA)" not in case["installed_after_remove"], case
    assert not (Path(krita_run[0]["models_dir"]) / "loras" / "krita-lora.safetensors").exists()


# -- live mode (the docker's Live toggle) ---------------------------------------------------------------------
def test_live_strokes_give_distinct_previews_the_last_of_the_final_canvas(krita_run):
    """Six strokes painted by script with Live on: several distinct previews, a busy indicator, every job
    of the session final, and the last preview is exactly the model's edit of the final canvas."""
    case, out, url = _case(krita_run, "live")
    assert case["live_on"] and case["idle"], case
    assert case["live"]["size"] == 32 and case["live"]["sde"] == "ode", case["live"]
    assert len(set(case["preview_keys"])) >= 4, case  # the first canvas and at least three stroke states
    assert case["updates_shown"] >= 4 and case["busy_seen"]
    assert set(case["sent_states"]) <= {"done", "cancelled"}, case["sent_states"]
    params = case["params"]
    assert params["seed"] == 23 and params["sde"] == "ode" and params["steps"] == 3 and params["samples"] == 1
    expected = _edit_in_process(krita_run, out / "live-final-canvas.png", params)
    assert decode_png((out / "live-last-preview.png").read_bytes()) == expected


def _edit_in_process(krita_run, canvas_png, params):
    """The tiny default model's edit of a canvas PNG in this process (the engine is deterministic per seed on
    the CPU: the server, with one thread, gives the same bytes), as decode_png's (width, height, rgba)."""
    import io

    import torch
    from PIL import Image

    from sdedit.engine import edit
    from sdedit.models import load_model

    report, _, _ = krita_run
    model = load_model(report["tiny_model"], device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        image = Image.open(canvas_png)
        image.load()
        result = edit(model, image, t0=params["t0"], sde=params["sde"], steps=params["steps"], seed=params["seed"])
    finally:
        torch.set_num_threads(threads)
    buf = io.BytesIO()
    result.images[0].save(buf, "PNG")
    return decode_png(buf.getvalue())


def test_live_apply_renders_the_result_at_full_size_as_one_undo_step(krita_run):
    case, out, _ = _case(krita_run, "live")
    assert case["apply_started"] and case["apply_report"]["ok"], case["apply_report"]
    added = [name for name in case["layers_after_apply"] if name not in case["layers_before"]]
    assert len(added) == 1 and "seed=23" in added[0], added
    # the canvas is the live size here, so the full-size render with the same seed is the preview itself
    assert _png(out, "live-applied.png") == decode_png((out / "live-last-preview.png").read_bytes())
    assert case["layers_after_undo"] == case["layers_before"]
    assert not case["live_after_off"]


def test_live_off_stops_all_work_within_a_second(krita_run):
    case, _, _ = _case(krita_run, "live_off")
    assert case["running"] and case["busy_visible"], case
    assert case["live"]["steps"] == 600
    assert case["off_call_s"] < 0.2, case  # the toggle returns at once
    assert case["job_state"]["state"] == "cancelled" and case["job_state"]["progress"] < 1.0, case
    assert case["stopped_after_s"] <= 1.0 and case["worker_finished_after_s"] <= 1.5, case
    assert case["sent_after_off"] == 0 and not case["live_after_off"] and not case["busy_after_off"]


def test_live_watching_costs_the_painter_little(krita_run):
    """The timer's look at an unchanged 2048x1536 layer takes a few tens of ms at most (every 400 ms, and never
    during a stroke); a look that finds a change also scales it to the live size."""
    case, _, _ = _case(krita_run, "live_cost")
    print("\nlive look at 2048x1536: unchanged %s ms, changed %s ms" % (case["unchanged_ms"], case["changed_ms"]))
    # unchanged looks send nothing (same checksum, same version); each stroke is one new version
    assert len({tuple(d) for d in case["digests"]}) == 1 and case["digests"][0][0] == case["version_before"], case
    assert case["versions"] == case["version_before"] + 3, case
    assert sorted(case["unchanged_ms"])[2] < 250, case  # a sanity bound (the cost is measured, not targeted, here)
    assert not case["live_after_off"]
