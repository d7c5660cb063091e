"""Read and check standard predictions (``onlinemap/schemas/prediction.schema.json``).

Design note: ``jsonschema`` validation of a 300-box prediction costs milliseconds, so the compiled
validator is built once per process (``functools.lru_cache``) and reused; ``iter_predictions``
validates every line it yields, skips the invalid ones with a warning naming the line, and keeps
going, so one bad line never hides a whole run (fileio.py habits).
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any, Iterator

from onlinemap.fileio import iter_jsonl

__all__ = ["SCHEMA_PATH", "load_schema", "validate_prediction", "iter_predictions", "PREDICTIONS_FILE"]

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "prediction.schema.json"
PREDICTIONS_FILE = "predictions.jsonl"
MAX_ERRORS = 20  # errors listed per prediction; the rest are counted


@functools.lru_cache(maxsize=1)
def load_schema() -> dict:
    """The standard prediction schema as a dict (read once per process)."""
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def _inline_refs(node, defs):
    """The schema with every local ``#/$defs/...`` reference replaced by its target (same meaning;
    ~20 % faster to validate with jsonschema, and valid draft-07 for fastjsonschema)."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/$defs/"):
            target = _inline_refs(defs[node["$ref"][len("#/$defs/"):]], defs)
            return {**target, **{k: _inline_refs(v, defs) for k, v in node.items() if k != "$ref"}}
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = load_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(_inline_refs(schema, schema.get("$defs", {})))


@functools.lru_cache(maxsize=1)
def _fast_validator():
    """fastjsonschema's compiled checker when installed, else None.

    jsonschema needs ~45 ms for a 300-box prediction (45 s per 1,000 samples); fastjsonschema
    compiles the same schema to Python code and needs ~1.5 ms. It is only a fast path for the
    common case, valid input: anything it rejects is re-checked by jsonschema, which stays the
    authority and writes the error messages. The inlined schema uses draft-07 keywords only.
    """
    try:
        import fastjsonschema
    except ImportError:
        return None
    schema = load_schema()
    flat = dict(_inline_refs(schema, schema.get("$defs", {})), **{"$schema": "http://json-schema.org/draft-07/schema#"})
    return fastjsonschema.compile(flat)


def validate_prediction(pred: Any) -> list[str]:
    """Return human-readable errors for ``pred`` (empty when it follows the schema).

    Each error names the JSON path of the offending value, e.g.
    ``detections_3d/4/size/1: 0 is less than or equal to the minimum of 0``.
    """
    fast = _fast_validator()
    if fast is not None:
        try:
            fast(pred)
            return []
        except Exception:  # JsonSchemaException, or odd input: let jsonschema decide and explain
            pass
    validator = _validator()
    if validator.is_valid(pred):  # no error objects are built
        return []
    errors = []
    for n, err in enumerate(sorted(validator.iter_errors(pred), key=lambda e: list(map(str, e.absolute_path)))):
        if n == MAX_ERRORS:
            errors.append("... more errors not shown")
            break
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        errors.append(f"{where}: {err.message}")
    return errors


def iter_predictions(run_dir: Path, *, validate: bool = True) -> Iterator[dict]:
    """Yield each valid standard prediction of ``run_dir/predictions.jsonl``.

    Lines that are not JSON, or (with ``validate``) do not follow the schema, are skipped with a
    warning that names the line and its first error. A missing file yields nothing.
    """
    path = Path(run_dir) / PREDICTIONS_FILE
    for lineno, pred in enumerate(iter_jsonl(path), 1):
        if validate:
            errors = validate_prediction(pred)
            if errors:
                token = pred.get("sample_token", "?")
                log.warning("%s: skipping prediction %d (sample %s): %s%s", path, lineno, token, errors[0],
                            f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")
                continue
        yield pred
