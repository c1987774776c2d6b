"""The server publishes its limits (GET /v1/health "limits"); the shared client reads them, and its own copy
(for servers that publish none) agrees with the server's definition."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e" / "krita"))

from sdedit_client import Client  # noqa: E402
from sdedit_client.errors import InvalidParameter  # noqa: E402
from sdedit_client.params import FALLBACK_LIMITS, limits_from, validate_params, validate_text  # noqa: E402


def test_the_clients_copy_agrees_with_the_server():
    from sdedit.params import edit_limits

    assert FALLBACK_LIMITS == edit_limits()


def test_published_limits_replace_the_copy_and_an_older_server_keeps_it():
    assert limits_from({"status": "ok", "device": "cpu", "models": []}) == FALLBACK_LIMITS  # an older server
    published = limits_from({"limits": {"max_samples": 4, "max_prompt_chars": 10, "samplers": ["vp", "LCM"],
                                        "max_steps": "many", "max_work": 10**9}})
    assert published["max_samples"] == 4 and published["samplers"] == ["vp", "lcm"]
    assert published["max_steps"] == FALLBACK_LIMITS["max_steps"]  # not understood: the copy's
    assert published["max_work"] == 10**9
    validate_params(samples=4, sde="lcm", limits=published)
    with pytest.raises(InvalidParameter, match="between 1 and 4"):
        validate_params(samples=5, limits=published)
    with pytest.raises(InvalidParameter, match="one of vp, lcm"):
        validate_params(sde="ve", limits=published)
    with pytest.raises(InvalidParameter, match="at most 10"):
        validate_text(prompt="a mountain lake", limits=published)


@pytest.fixture(scope="module")
def server(tiny_vp_dir, tmp_path_factory):
    from sdedit_server_process import ServerProcess

    proc = ServerProcess(tiny_vp_dir, tmp_path_factory.mktemp("server") / "server.log",
                         extra_env={"SDEDIT_MAX_PIXELS": "123456", "SDEDIT_MAX_WORK": "987654321"})
    proc.start()
    yield proc
    proc.stop()


def test_the_server_publishes_its_limits_and_the_client_reads_them(server):
    from sdedit.params import edit_limits

    client = Client(server.url, timeout=20.0)
    assert client.limits == FALLBACK_LIMITS  # not asked yet
    published = client.health()["limits"]
    assert {k: published[k] for k in edit_limits()} == edit_limits()
    assert published["max_pixels"] == 123456 and published["max_work"] == 987654321
    assert published["max_work_why"] == "SDEDIT_MAX_WORK"
    assert client.limits["max_pixels"] == 123456 and client.limits["max_samples"] == edit_limits()["max_samples"]
