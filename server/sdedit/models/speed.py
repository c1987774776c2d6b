"""Speed levers applied to a loaded network: precision, memory layout, compilation.

Chosen per device: on CUDA half precision (bf16 where the GPU supports it, else fp16) and channels_last,
which the tensor cores want; on the CPU float32 unless bf16 is asked for (it only pays on CPUs with native
bf16 units). torch.compile is opt-in (SDEDIT_COMPILE=1): its first call compiles for tens of seconds.
"""
from __future__ import annotations

import os

import torch

from sdedit.errors import InputError
from sdedit.params import PRECISIONS


def pick_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision '{precision}': use one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def prepare_network(net: torch.nn.Module, device: torch.device, dtype: torch.dtype,
                    compile_net: bool | None = None) -> torch.nn.Module:
    """Move, cast and (on CUDA) lay out the network for inference; compile it when asked."""
    net = net.to(device=device, dtype=dtype).eval().requires_grad_(False)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    if compile_net is None:
        compile_net = compile_requested()
    if compile_net:
        net = torch.compile(net, dynamic=False)
    return net


def compile_requested() -> bool:
    """Whether SDEDIT_COMPILE asks for torch.compile."""
    return os.environ.get("SDEDIT_COMPILE", "") not in ("", "0")


def default_precision() -> str:
    return os.environ.get("SDEDIT_PRECISION", "auto")
