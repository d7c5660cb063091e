"""The nightly benchmark: a fixed run per model, compared with its history, under a lock and cron.

``config.py`` reads nightly.toml, ``regress.py`` holds the regression rule (asv's: a median
slowdown beyond a factor that is also significant by Mann-Whitney U), ``lock.py`` keeps two
nights from overlapping and spots a crashed one, ``job.py`` runs a night, ``report.py`` writes its
markdown and trend plots, ``cron.py`` installs the crontab line. docs/nightly.md is the user guide.
"""
