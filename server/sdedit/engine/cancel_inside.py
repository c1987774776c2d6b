"""Cancel inside a network call, not only between sampler steps.

One step of a big canvas is one network call that can run for half a minute on a CPU (the detail pass at
4096 px); checking cancel between steps then answers "running" all that time. A forward pre-hook on every
innermost layer of the model's networks checks the same flag, so a cancel lands within one layer (well under
a second). Nothing is computed differently: outputs stay byte-identical when nothing is cancelled.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, List, Optional

import torch

from sdedit.errors import Cancelled


def networks(model: object) -> List[torch.nn.Module]:
    """The torch modules a model object holds (its UNet, VAE, text encoders ...)."""
    found = [value for value in vars(model).values() if isinstance(value, torch.nn.Module)]
    return found or ([model] if isinstance(model, torch.nn.Module) else [])


@contextlib.contextmanager
def cancel_inside(model: object, cancel: Optional[Callable[[], bool]]) -> Iterator[None]:
    """While inside, every innermost layer of the model's networks raises Cancelled once `cancel()` is true.

    Skipped for compiled networks (SDEDIT_COMPILE: a hook would break the compiled graph); they keep the
    between-steps check."""
    from sdedit.models.speed import compile_requested

    if cancel is None or compile_requested():
        yield
        return

    def check(_module: torch.nn.Module, _inputs: object) -> None:
        if cancel():
            raise Cancelled("The edit was cancelled.")

    handles = []
    try:
        for net in networks(model):
            for layer in net.modules():
                if next(layer.children(), None) is None:  # innermost: convolutions, norms, attention projections
                    handles.append(layer.register_forward_pre_hook(check))
        yield
    finally:
        for handle in handles:
            handle.remove()
