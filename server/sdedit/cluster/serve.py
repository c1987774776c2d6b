"""`sdedit serve --ray [ADDRESS]`: run_server (same checks, same app) with the Ray pool as its backend."""
from __future__ import annotations

from typing import Optional

from ..errors import InputError


def run_cluster_server(address: Optional[str], replicas: Optional[int] = None, cpus_per_replica: float = 1.0,
                       **server_args) -> None:
    """Serve the HTTP API with edits on a Ray Serve pool; ADDRESS None starts a local Ray for this server."""
    if not address:
        from .local_ray import keep_on_loopback

        keep_on_loopback()  # before Ray is imported: it reads the switch once
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError:
        raise InputError('--ray needs Ray Serve: pip install "sdedit[cluster]" (or "ray[serve]").') from None
    if replicas is not None and replicas < 1:
        raise InputError(f"--replicas must be at least 1, not {replicas}.")
    from ..api import run_server
    from .backend import RayBackend

    made: list = []

    def backend() -> RayBackend:
        made.append(RayBackend(address, replicas, server_args.get("device", "auto"), cpus_per_replica))
        return made[0]

    try:
        run_server(backend_factory=backend, **server_args)
    finally:
        for pool in made:
            pool.close()
