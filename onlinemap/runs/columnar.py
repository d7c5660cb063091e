"""Frames stored column by column: how a results-cache piece is kept, and how pieces become one frame.

Why not pickle the pandas frame itself: at 100,000 runs a cached ``om.results()`` spent most of
its time in three places (docs/measurement.md section 8): unpickling ~50 string objects per row
(host, env, versions, settings repeat on every run), ``pd.concat`` of 50 frames of 151 columns
(its cost is per column per frame), and turning category columns back into strings. Here a
column of repeated strings is kept as small integer codes into its distinct values, every other
column as its array (numbers, bools and datetimes are raw memory to pickle), and :func:`stack`
joins many pieces one column at a time with numpy, building the frame once. A column comes back
with the dtype it had in the piece (``str`` or ``object`` strings included), so the frame is the
one pandas builds from the rows; a column whose pieces disagree (absent from some, or numbers in
one and only nulls in another) is joined as objects and inferred again, as pandas does for rows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    import pandas

__all__ = ["encode", "concat_tables", "stack"]

ARRAY = "a"      # payload: the column's array (ndarray or pandas ExtensionArray), kept as it is
CODES = "c"      # payload: (integer codes, distinct values as an object ndarray, the column's dtype)
_MIN_ROWS = 8    # below this a column is not worth coding


def _codes_of(values, dtype):
    """(codes, distinct values) when ``values`` are repeated strings worth coding, else None."""
    import numpy as np
    import pandas as pd

    n = len(values)
    if n < _MIN_ROWS:
        return None
    if isinstance(dtype, pd.StringDtype):
        pass                                  # strings with NaN for missing (pandas >= 3's default)
    elif dtype == object:
        # object strings (pandas < 3): only when every value is a string, so that a missing
        # value (None vs NaN) is never rewritten; lists and dicts are left as they are
        if pd.api.types.infer_dtype(values, skipna=False) != "string":
            return None
    else:
        return None
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if len(uniques) > n // 4:
        return None                           # mostly distinct (run ids, paths): no gain
    return codes.astype(_code_type(len(uniques))), np.asarray(uniques, dtype=object)


def encode(frame: "pandas.DataFrame") -> dict:
    """A picklable table of ``frame``: {"rows": n, "columns": [(name, kind, payload, signature), ...]}.

    The signature (kind, ``repr`` of the dtype) lets :func:`stack` see that pieces agree on a
    column by comparing short tuples of strings, not pandas dtypes (150 columns x 50 pieces).
    """
    return {"rows": len(frame), "columns": [_encode_column(name, frame[name]) for name in frame.columns]}


def _encode_column(name, series) -> tuple:
    dtype = series.dtype
    coded = _codes_of(series, dtype)
    if coded is not None:
        return (name, CODES, (coded[0], coded[1], dtype), (CODES, repr(dtype)))
    values = series.array if _is_extension(dtype) else series.to_numpy()
    return (name, ARRAY, values, (ARRAY, repr(dtype)))


def _code_type(distinct: int):
    import numpy as np

    return np.int8 if distinct < 127 else np.int16 if distinct < 32767 else np.int32


def concat_tables(first: dict, second: dict) -> dict:
    """One table of ``first``'s rows then ``second``'s, without building a frame: what ``encode``
    of the two frames' concatenation holds (new runs prepended to a piece cost a few ms, not a
    re-encoded piece). Columns agreeing on their signature are joined as they are (codes mapped
    onto the merged distinct values); any other column goes through :func:`stack`'s rules."""
    import numpy as np
    import pandas as pd

    rows = [first["rows"], second["rows"]]
    a = {c[0]: c for c in first["columns"]}
    b = {c[0]: c for c in second["columns"]}
    columns = []
    for name in list(a) + [n for n in b if n not in a]:
        ca, cb = a.get(name), b.get(name)
        if ca is not None and cb is not None and ca[3] != cb[3] and ca[3][1] == cb[3][1]:
            # the same string dtype, coded on one side only (a few new rows are never coded)
            coded_a, coded_b = _as_codes(ca), _as_codes(cb)
            if coded_a is not None and coded_b is not None:
                ca, cb = coded_a, coded_b
        if ca is not None and cb is not None and ca[3] == cb[3]:
            if ca[1] == ARRAY:
                columns.append((name, ARRAY, _join([ca[1:], cb[1:]], rows), ca[3]))
                continue
            (codes_a, uniq_a, dtype), (codes_b, uniq_b, _) = ca[2], cb[2]
            inverse, merged = pd.factorize(np.concatenate([uniq_a, uniq_b]))
            kind = _code_type(len(merged))
            parts = []
            for codes, remap in ((codes_a, inverse[:len(uniq_a)]), (codes_b, inverse[len(uniq_a):])):
                parts.append(np.where(codes < 0, -1, remap.take(codes, mode="clip")).astype(kind))
            columns.append((name, CODES, (np.concatenate(parts), np.asarray(merged, dtype=object), dtype), ca[3]))
            continue
        joined = _join([ca[1:] if ca is not None else None, cb[1:] if cb is not None else None], rows)
        columns.append(_encode_column(name, pd.Series(joined, copy=False)))
    return {"rows": sum(rows), "columns": columns}


def _is_extension(dtype) -> bool:
    import pandas as pd

    return isinstance(dtype, pd.api.extensions.ExtensionDtype)


def _decode_codes(codes, uniques, dtype):
    import numpy as np

    values = uniques.take(codes)              # references to the distinct strings: no new objects
    missing = codes < 0
    if missing.any():
        values[missing] = np.nan if _is_extension(dtype) else None
    return values


def _as_objects(kind, payload, rows):
    import numpy as np

    if kind is None:
        return np.full(rows, np.nan, dtype=object)
    if kind == CODES:
        return _decode_codes(*payload)
    return np.asarray(payload, dtype=object)


def _join(parts: list, rows: list[int]):
    """One column from its pieces' (kind, payload, signature) (None where a piece lacks it)."""
    import numpy as np
    import pandas as pd

    first = parts[0]
    if first is not None and all(p is not None and p[2] == first[2] for p in parts):
        if first[0] == ARRAY:                 # the same dtype everywhere: one concatenation
            arrays = [p[1] for p in parts]
            if _is_extension(arrays[0].dtype):
                return type(arrays[0])._concat_same_type(arrays)
            return np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    sigs = {p[2][1] for p in parts if p is not None}
    if None not in parts and len(sigs) == 1:
        # coded strings (in some pieces or all) of one dtype: references to the distinct values
        dtype = next(p[1][2] if p[0] == CODES else p[1].dtype for p in parts)
        values = np.concatenate([_as_objects(kind, payload, n) for (kind, payload, _), n in zip(parts, rows)])
        return pd.array(values, dtype=dtype) if _is_extension(dtype) else values
    # pieces disagree: objects, then the dtype pandas infers for the whole column
    values = np.concatenate([_as_objects(p[0] if p else None, p[1] if p else None, n) for p, n in zip(parts, rows)])
    return pd.Series(values, dtype=object).infer_objects().array


def _as_codes(column: tuple) -> tuple:
    """A string column as codes (it may already be); None for a column of anything but strings."""
    import numpy as np
    import pandas as pd

    name, kind, payload, (_, dtype_repr) = column
    if kind == CODES:
        return column
    if not isinstance(payload.dtype, pd.StringDtype) and not (
            payload.dtype == object and pd.api.types.infer_dtype(payload, skipna=False) == "string"):
        return None
    codes, uniques = pd.factorize(payload, use_na_sentinel=True)
    return (name, CODES, (codes.astype(_code_type(len(uniques))), np.asarray(uniques, dtype=object), payload.dtype),
            (CODES, dtype_repr))


def stack(tables: Iterable[dict]) -> "pandas.DataFrame":
    """One frame of the tables' rows, in order; columns in order of first appearance (as rows give)."""
    import pandas as pd

    tables = [t for t in tables if t["rows"]]
    if not tables:
        return pd.DataFrame()
    rows = [t["rows"] for t in tables]
    order: dict[str, None] = {}
    by_table = []
    for t in tables:
        cols = {name: (kind, payload, sig) for name, kind, payload, sig in t["columns"]}
        by_table.append(cols)
        for name in cols:
            order.setdefault(name, None)
    data = {name: _join([cols.get(name) for cols in by_table], rows) for name in order}
    return pd.DataFrame(data, copy=False)
