"""Options shared by several commands (asv's common_args idea): defined once, same defaults as the API."""
from __future__ import annotations

import math

import click

from onlinemap.runner import DEFAULT_INACTIVITY_S, DEFAULT_MIN_DURATION_S, DEFAULT_MIN_SAMPLES, DEFAULT_WARMUP

__all__ = ["run_options", "positive_int", "nonneg_int", "positive_seconds", "nonneg_seconds"]


class _BoundedInt(click.ParamType):
    def __init__(self, minimum: int, maximum: int = 1_000_000):
        self.minimum, self.maximum = minimum, maximum
        self.name = f"integer>={minimum}"

    def convert(self, value, param, ctx):
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not an integer", param, ctx)
        if not self.minimum <= number <= self.maximum:
            self.fail(f"{number} is out of range [{self.minimum}, {self.maximum}]", param, ctx)
        return number


positive_int = _BoundedInt(1)
nonneg_int = _BoundedInt(0, 10_000)


class _Seconds(click.ParamType):
    """A finite number of seconds: ``nan`` and ``inf`` are floats to Python but no duration
    (``nan`` broke run.json, which is strict JSON; ``-1`` made an instant "timeout")."""

    def __init__(self, allow_zero: bool, unit: str = "seconds"):
        self.allow_zero = allow_zero
        self.unit = unit
        self.name = f"{unit}>=0" if allow_zero else f"{unit}>0"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number of {self.unit}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of {self.unit}", param, ctx)
        if number < 0 or (number == 0 and not self.allow_zero):
            self.fail(f"{value!r} must be {'0 or more' if self.allow_zero else 'more than 0'} {self.unit}", param, ctx)
        return number


positive_seconds = _Seconds(allow_zero=False)
nonneg_seconds = _Seconds(allow_zero=True)
positive_percent = _Seconds(allow_zero=False, unit="percent")
positive_hz = _Seconds(allow_zero=False, unit="Hz")


def run_options(func):
    """Options every run command takes (data, device, timeouts, measurement)."""
    opts = [
        click.option("--dataroot", type=click.Path(file_okay=False), default=None,
                     help="nuScenes root [default: $NUSCENES_ROOT, else ONLINEMAP_HOME/data/nuscenes-synth]; "
                          "OpenLane-V2 models (TopoMLP): the OpenLane-V2 folder [default: $OPENLANE_V2_ROOT, "
                          "else ONLINEMAP_HOME/data/openlane-v2-synth]"),
        click.option("--version", "data_version", default=None,
                     help="v1.0-trainval | v1.0-mini, or an OpenLane-V2 collection such as data_dict_subset_A_val "
                          "[default: detected]"),
        click.option("--device", default="auto", show_default=True, help="cpu, cuda or cuda:N; auto = cuda:0 if a GPU is seen"),
        click.option("--warmup", type=nonneg_int, default=DEFAULT_WARMUP, show_default=True,
                     help="warm-up samples, excluded from every statistic"),
        click.option("--min-samples", type=positive_int, default=DEFAULT_MIN_SAMPLES, show_default=True,
                     help="without --samples: measure at least this many samples ..."),
        click.option("--min-duration", type=nonneg_seconds, default=DEFAULT_MIN_DURATION_S, show_default=True,
                     help="... and for at least this many seconds"),
        click.option("--ci-target", type=positive_percent, default=None,
                     help="without --samples: after the minimums, go on until the 95 % interval of the median "
                          "forward time is within +-PCT % of it (stop_reason ci_target) ..."),
        click.option("--max-duration", type=positive_seconds, default=None,
                     help="... or until this many seconds of measuring (stop_reason max_duration) [default: none]"),
        click.option("--rate", "rate_hz", type=positive_hz, default=None,
                     help="paced: start a sample every 1/HZ s, as a car's camera does (12 = the nuScenes camera "
                          "rate, 2 = keyframes) [default: back-to-back]"),
        click.option("--timeout", type=positive_seconds, default=None, help="wall-clock limit per model run, seconds [default: none]"),
        click.option("--inactivity-timeout", type=positive_seconds, default=DEFAULT_INACTIVITY_S, show_default=True,
                     help="kill a model run that writes no output and no sample for this long, seconds "
                          "(counted from the model process's first event, not from the launch)"),
        click.option("--timer", type=click.Choice(["wall", "cuda-events"]), default="wall", show_default=True,
                     help="forward timer: synchronised wall clock, plus CUDA events with cuda-events"),
        click.option("--no-telemetry", is_flag=True, help="do not sample NVML / host memory"),
        click.option("--exclusive", is_flag=True, help="refuse to run when the GPU already holds memory"),
        click.option("--refuse-throttled", is_flag=True,
                     help="fail a run (exit 1, results kept) whose GPU clocks were throttled by power, "
                          "heat or the board while it measured"),
        click.option("--json", "as_json", is_flag=True, help="print the run record(s) as JSON"),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func
