"""Synthetic pictures and their measures: landscape scenes, stroke paintings made from them, composed demo
guides, the fractal noise under them, and the weight-free realism/faithfulness metrics.

Training (sdedit.train), the benchmarks and the tests draw on the same generators; numpy (and scipy, PIL)
only, except the metrics, which use torch.
"""
