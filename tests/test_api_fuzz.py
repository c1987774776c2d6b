"""Fuzz the server's own OpenAPI schema with schemathesis (valid and invalid requests): never a 5xx.

Runs against a real `sdedit serve` process; bounded by max_examples so it stays quick.
"""
from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")  # a dev dependency (pyproject [dev])
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance  # noqa: E402

from test_server_support import ServerProcess, server_env  # noqa: E402

TOKEN = "fuzz-token"


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, tiny_vp_dir):
    env = server_env(tiny_vp_dir.parent, tiny_vp_dir, SDEDIT_NO_DOWNLOADS="1")  # fuzzed pulls/removals: 403
    proc = ServerProcess(env, tmp_path_factory.mktemp("logs") / "fuzz.log", token=TOKEN, via_cli=True).wait_ready()
    yield proc
    assert proc.stop() == 0, proc.log()[-2000:]


EXPECTED_OPERATIONS = {
    ("GET", "/v1/health"), ("GET", "/v1/models"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/{job_id}"),
    ("GET", "/v1/jobs/{job_id}/result"), ("GET", "/v1/jobs/{job_id}/preview"), ("DELETE", "/v1/jobs/{job_id}"),
    ("GET", "/v1/handoff"), ("GET", "/v1/loras"), ("GET", "/v1/models/catalogue"), ("POST", "/v1/models/pull"),
    ("GET", "/v1/models/pull/{pull_id}"), ("DELETE", "/v1/models/pull/{pull_id}"), ("DELETE", "/v1/models/{name}"),
}


@pytest.mark.slow
def test_no_server_errors(fuzz_server):
    """Every operation, positive and negative generation: no 5xx, documented status codes and bodies."""
    api = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json",
                                        headers={"Authorization": f"Bearer {TOKEN}"})  # the schema needs it too
    operations = [result.ok() for result in api.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} == EXPECTED_OPERATIONS
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    calls = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                      database=None)
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case):
                response = case.call_and_validate(base_url=fuzz_server.url, checks=checks, timeout=30,
                                                  headers={"Authorization": f"Bearer {TOKEN}"})
                calls.append(response.status_code)

            try:
                fuzz()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # e.g. GET /v1/health has nothing to get wrong
    assert len(calls) > 100 and all(code < 500 for code in calls)
    assert fuzz_server.proc.poll() is None
