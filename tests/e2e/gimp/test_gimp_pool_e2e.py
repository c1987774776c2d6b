"""GIMP 3 end to end against `sdedit serve --ray` (issue 15): the unchanged plug-in, a server whose edits run
on a local Ray Serve pool of 2 CPU replicas. One case: the selection edit of gimp_batch_edit.py (2 samples)."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import gimproot
from gimprun import GimpRun, free_port

pytestmark = pytest.mark.e2e

POOL_START_S = 300


@pytest.fixture(scope="module")
def pool_server(gimp_root, tiny_vp_dir, tmp_path_factory):
    """`sdedit serve --ray --replicas 2` (its own local Ray) on a free loopback port; (url, log path)."""
    pytest.importorskip("ray.serve", reason='the Ray pool needs the extra: pip install "sdedit[cluster]"')
    port = quiet_port()
    log = tmp_path_factory.mktemp("gimp-pool") / "server.log"
    env = dict(os.environ, SDEDIT_DEFAULT_MODEL=str(tiny_vp_dir), OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(gimproot.REPO / "server"), str(gimproot.REPO / "shared")]))
    env.pop("SDEDIT_TOKEN", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sdedit", "serve", "--ray", "--replicas", "2", "--host",
                                 "127.0.0.1", "--port", str(port), "--device", "cpu"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + POOL_START_S
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/v1/health", timeout=2) as answer:
                    if answer.status == 200 and json.load(answer).get("device", "").startswith("ray:"):
                        break  # our server (another process may answer on the port meanwhile)
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the Ray-backed server did not start: %s" % log.read_text()[-3000:])
            time.sleep(0.3)
        yield url, log
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def quiet_port() -> int:
    """A free port outside the ephemeral range (see tests/test_cluster.py): the pool binds it a minute later."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def test_plugin_edits_through_the_ray_pool(gimp_root, pool_server):
    url, log = pool_server
    run = GimpRun(gimp_root, "gimp_batch_edit.py", {"server_url": url, "dead_url": "http://127.0.0.1:%d" % free_port(),
                                                    "only": "selection"})
    try:
        cases = {case["case"]: case for case in run.finish()["cases"]}
    finally:
        run.cleanup()
    assert list(cases) == ["selection"]
    case = cases["selection"]
    assert case["status"] == "success", case["error"]
    assert [layer["name"] for layer in case["new_layers"]] == ["SDEdit t0=0.60 VP #1 seed=123",
                                                              "SDEdit t0=0.60 VP #2 seed=124"]
    for layer in case["new_layers"]:
        assert layer["offsets"] == case["source"]["offsets"] and layer["size"] == case["source"]["size"]
    for check in case["checks"]:
        assert check["outside_far"] > 0 and check["outside_far_equal"] == check["outside_far"]  # beyond the grown band
        assert check["inside_changed"] > 0.5 * check["inside"]
    served = log.read_text(errors="replace")
    assert re.search(r"job \w+ running on replica pid=\d+", served), served[-3000:]  # the pool ran it
    assert "state=done seeds=123,124" in served, served[-3000:]
