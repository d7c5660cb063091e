"""Result files: one directory per run under ONLINEMAP_HOME/results, read by CLI, notebook and cron."""
