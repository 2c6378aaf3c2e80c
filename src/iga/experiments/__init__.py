"""Orchestration on top of the library: evaluating runs, result files, the demo, sweeps and reports."""
