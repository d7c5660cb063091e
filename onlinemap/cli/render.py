"""Plain-text rendering shared by commands: tables, figures with units, a run's short summary."""
from __future__ import annotations

from typing import Any, Sequence

__all__ = ["table", "fmt_ms", "fmt_mb", "run_summary_lines"]


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def fmt_mb(value: float | None, reason: str | None = None) -> str:
    if value is None:
        return f"n/a ({reason})" if reason else "n/a"
    return f"{value:.0f} MiB"


def run_summary_lines(record: dict, run_dir: str) -> list[str]:
    """A few lines a person reads after a run: status, latency, memory, where the files are."""
    s = record.get("summary") or {}
    samples = s.get("samples") or {}
    fwd = (s.get("latency_ms") or {}).get("forward") or {}
    data = (s.get("latency_ms") or {}).get("data") or {}
    conv = (s.get("latency_ms") or {}).get("convert") or {}
    mem = s.get("memory") or {}
    settings = record.get("settings") or {}
    lines = [f"{record['model']}: {record['status']} — {samples.get('measured', 0)} samples measured "
             f"(+{samples.get('warmup', 0)} warm-up) on {settings.get('device')}"]
    if fwd.get("count"):
        lines.append(f"  forward  p50 {fmt_ms(fwd.get('p50'))}  p90 {fmt_ms(fwd.get('p90'))}  mean {fmt_ms(fwd.get('mean'))}"
                     f"  ({fwd.get('fps') or 0:.1f} FPS)   data p50 {fmt_ms(data.get('p50'))}  convert p50 {fmt_ms(conv.get('p50'))}")
        load = s.get("model_load_s")
        lines.append(f"  load     {'n/a' if load is None else f'{load:.2f} s'}, first call {fmt_ms(s.get('first_call_ms'))}")
    lines.append(f"  memory   torch peak {fmt_mb(mem.get('torch_max_allocated_mb'), mem.get('torch_reason'))}"
                 f" | NVML device +{fmt_mb(mem.get('nvml_device_delta_peak_mb'), mem.get('nvml_device_reason'))}"
                 f" | NVML process {fmt_mb(mem.get('nvml_process_used_peak_mb'), mem.get('nvml_process_reason'))}"
                 f" | host RSS peak {fmt_mb(mem.get('host_rss_peak_mb'))}")
    preds = s.get("predictions") or {}
    if preds:
        lines.append(f"  preds    {preds.get('valid', 0)} valid, {preds.get('invalid', 0)} invalid")
    for warning in s.get("warnings") or []:
        lines.append(f"  warning  {warning}")
    if record.get("error"):
        err = record["error"]
        lines.append(f"  error    {err.get('message')}" + (f" -> {err['hint']}" if err.get("hint") else ""))
    lines.append(f"  results  {run_dir}")
    return lines
