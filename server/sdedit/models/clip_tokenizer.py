"""The CLIP tokenizer every Stable Diffusion text encoder uses, built with no network access.

Single-file checkpoints carry no tokenizer, and diffusers would fetch one from the hub. All SD families use
the same byte-level BPE vocabulary (OpenAI CLIP's `bpe_simple_vocab_16e6.txt.gz`, MIT licence, as shipped
by open_clip_torch); it is shipped beside this module and turned into a `CLIPTokenizer` in memory. SD 2.x
and SDXL's second encoder (OpenCLIP) pad with "!" instead of the end-of-text token.
"""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

BPE_FILE = Path(__file__).resolve().parent / "sd_configs" / "bpe_simple_vocab_16e6.txt.gz"
MAX_LENGTH = 77
MERGES = 49152 - 256 - 2  # the merges CLIP uses (the file holds more)


def _byte_alphabet() -> list[str]:
    """GPT-2/CLIP's printable stand-in for each of the 256 bytes, in byte order of the base vocabulary."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in printable] + [chars[b] for b in range(256) if b not in printable]


@lru_cache(maxsize=1)
def _vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    lines = gzip.decompress(BPE_FILE.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1:MERGES + 1]
    alphabet = _byte_alphabet()
    words = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in merges]
    words += ["<|startoftext|>", "<|endoftext|>"]
    return {w: i for i, w in enumerate(words)}, merges


@lru_cache(maxsize=4)
def clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """A transformers CLIPTokenizer (77 tokens) with the given padding token."""
    from transformers import CLIPTokenizer

    vocab, merges = _vocab_and_merges()
    pairs = [tuple(m.split()) for m in merges]
    tok = CLIPTokenizer(vocab=dict(vocab), merges=pairs, pad_token=pad_token)
    tok.model_max_length = MAX_LENGTH
    return tok
