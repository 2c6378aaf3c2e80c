"""Sweeps: the spec and its jobs (:mod:`iga.sweeps.sweep`), where jobs run (:mod:`iga.sweeps.launchers`), and what
is read back from a sweep folder: records and statistics (:mod:`iga.sweeps.sweep_results`), tables
(:mod:`iga.sweeps.collect`), cost (:mod:`iga.sweeps.sweep_cost`) and figures (:mod:`iga.sweeps.sweep_plots`).

Tables need scipy and figures matplotlib: ``pip install 'iga[experiments]'``."""
