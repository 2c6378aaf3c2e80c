"""The demo (``iga demo``): the embedded benchmark end to end, on top of :mod:`iga.runs` and :mod:`iga.sweeps`."""
