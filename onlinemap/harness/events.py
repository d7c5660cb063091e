"""Names shared by the harness (writer) and the driver (reader), and the JSONL writer.

The harness writes three files the driver names in the job file:
  events.jsonl       lifecycle: started, env, loaded, memory, finished, error
  samples.jsonl      one line per sample (warm-up flagged), appended and flushed as it happens
  predictions.jsonl  one standard prediction per sample, same order as samples.jsonl
Files, not pipes: a crash or a killed driver keeps every finished line on disk. The last two are
written by the result writer process (writer.py), which the worker hands each sample to; events
are written by the worker itself (JsonlWriter below).
"""
import json
import os

PROTOCOL_VERSION = 1

# event names (the "event" key of events.jsonl lines)
STARTED = "started"      # pid, python, argv
ENV = "env"              # versions of python/torch/cuda/mm* inside the env, device properties
LOADED = "loaded"        # import_s, load_s (model build + weights), model_alloc_mb
MEMORY = "memory"        # torch peaks over the measured region (null + reason when not measurable), worker_rss_peak_mb
FINISHED = "finished"    # measured, warmup, wall_s, stop_reason
ERROR = "error"          # stage, type, message, traceback (the worker exits non-zero after it)

# stages an ERROR can name
STAGE_IMPORT = "import"
STAGE_LOAD = "load"
STAGE_SAMPLE = "sample"
STAGE_WRITE = "write"      # writing a result line failed (disk full, unserialisable prediction)

# per-sample fields (samples.jsonl)
SAMPLE_FIELDS = ("index", "sample_token", "scene_token", "warmup", "ok", "data_ms", "forward_ms",
                 "forward_cuda_ms", "convert_ms", "total_ms", "write_ms", "t")

# exit codes of the worker itself
EXIT_OK = 0
EXIT_ERROR = 1           # the adapter raised (import, load or a sample): see the ERROR event
EXIT_BAD_JOB = 2         # the job file is unreadable or incomplete
EXIT_ORPHANED = 3        # the driver disappeared: the worker stopped itself to free the GPU


class JsonlWriter(object):
    """Append one JSON object per line, flushed at once (optionally fsynced)."""

    def __init__(self, path, fsync=False):
        self.path = path
        self._fh = open(path, "a")
        self._fsync = fsync

    def write(self, obj):
        # allow_nan=False: NaN/inf are not JSON; a model emitting them fails loudly instead of writing a broken file
        self._fh.write(json.dumps(obj, default=str, allow_nan=False, separators=(",", ":")) + "\n")
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def close(self):
        if not self._fh.closed:
            self._fh.close()
