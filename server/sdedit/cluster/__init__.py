"""`sdedit serve --ray`: the same HTTP API (sdedit.api) in front of a Ray Serve pool of edit replicas.

The front process keeps the job queue, job states and results (sdedit.api.jobs), so they live on however the
pool changes; each replica (sdedit.cluster.replica) holds its model and runs one edit at a time. Ray is imported
only here, and only when --ray is given: `pip install "sdedit[cluster]"` adds it.
"""
from __future__ import annotations

from .serve import run_cluster_server

__all__ = ["run_cluster_server"]
