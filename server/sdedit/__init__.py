"""SDEdit for painters: stochastic differential editing engine, models, CLI and local server."""

__version__ = "0.1.0"
