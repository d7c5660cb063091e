"""Reports over recorded runs: comparison tables, plots, markdown summaries, bird's-eye views.

Everything here reads runs through their result files only (``run.json``, ``samples.jsonl``,
``predictions.jsonl``, ``metrics.json``): the same figures come out on the pod that made the
runs and on a laptop holding a copy of ``results/``. Modules:

- ``compare.py``: pick runs (ids, prefixes, newest ok run per model), one flat row per run,
  ``comparison_summary.json`` + ``comparison.csv``;
- ``plots.py``: the PNG figures (matplotlib, Agg backend, imported inside the functions);
- ``summary.py``: ``summary.md``, which ties the table and the figures together;
- ``viz.py``: bird's-eye view of one sample's predictions over its ground truth.

Importing this package imports none of them (the CLI stays fast).
"""
__all__: list = []
