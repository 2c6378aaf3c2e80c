"""One run: its folder and files (:mod:`iga.runs.folder`), training it end to end (:mod:`iga.runs.pipeline`),
evaluating it and recording the result (:mod:`iga.runs.evaluate`). Used by ``iga train`` / ``iga eval``, the
sweeps, the demo and the studies."""
