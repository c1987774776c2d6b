"""Training of the embedded default model: procedural landscape data, stroke simulation, training loop.

Entry point: `python -m sdedit.train --out runs/landscape --minutes 100 --export server/sdedit/weights/landscape`.
"""
