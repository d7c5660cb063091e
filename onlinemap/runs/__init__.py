"""Run directories: one per run under ONLINEMAP_HOME/results, read by CLI, notebook and cron.

(Named ``runs``, not ``results``: a subpackage called ``results`` would be set as the attribute
``onlinemap.runs`` on import and shadow the API function ``om.results()``.)
"""
