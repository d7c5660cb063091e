"""Code that runs inside a model's environment (Python 3.7+, standard library only).

Nothing here imports ``onlinemap`` or any third-party package at module level: the files are run by
path under the model env's own python (``python .../harness/worker.py job.json``), and load each
other by file path under private module names so that a model repo's ``utils``/``tools`` modules
can never be shadowed. The driver may import these modules (for shared names), never the reverse.
"""
