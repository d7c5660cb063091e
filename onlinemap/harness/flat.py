"""Flatten an adapter's nested inputs/outputs into an ordered list of tensors, and back.

Exported graphs take and return plain tensors; adapters pass nested dicts/lists (``img``,
``img_metas``). A leaf's *path* is the list of keys and indices that reaches it from the top, so
metadata.json can say where every graph input came from. Leaves that are not tensors are kept
in the structure as they were at trace time (*baked in*) and listed apart. Standard library only,
Python 3.7 syntax; torch is only touched through the objects passed in.
"""


def is_tensor(value):
    """A torch tensor, recognised without importing torch (the env may not have it)."""
    cls = type(value)
    return cls.__module__.split(".")[0] == "torch" and hasattr(value, "shape") and hasattr(value, "dtype")


def path_str(path):
    """``["img_metas", 0, "lidar2img"]`` -> ``img_metas[0].lidar2img``."""
    out = ""
    for key in path:
        if isinstance(key, int):
            out += "[%d]" % key
        else:
            out += ("." if out else "") + str(key)
    return out or "<root>"


def flatten(obj, path=None):
    """(tensors, baked): ``[(path, tensor)]`` in a fixed walk order, ``[(path, value)]`` for the rest."""
    path = [] if path is None else path
    tensors, baked = [], []
    if is_tensor(obj):
        tensors.append((list(path), obj))
    elif isinstance(obj, dict):
        for key in obj:
            t, b = flatten(obj[key], path + [key])
            tensors.extend(t)
            baked.extend(b)
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            t, b = flatten(item, path + [i])
            tensors.extend(t)
            baked.extend(b)
    else:
        baked.append((list(path), obj))
    return tensors, baked


def rebuild(template, tensors):
    """``template`` with its tensor leaves replaced, in flatten() order, by ``tensors`` (an iterator)."""
    if is_tensor(template):
        return next(tensors)
    if isinstance(template, dict):
        return type(template)((key, rebuild(value, tensors)) for key, value in template.items())
    if isinstance(template, tuple):
        return tuple(rebuild(item, tensors) for item in template)
    if isinstance(template, list):
        return [rebuild(item, tensors) for item in template]
    return template


def from_paths(pairs):
    """A nested structure of dicts (string keys) and lists (int keys) from ``[(path, value)]``."""
    if len(pairs) == 1 and not pairs[0][0]:
        return pairs[0][1]
    root = [] if isinstance(pairs[0][0][0], int) else {}
    for path, value in pairs:
        node = root
        for depth, key in enumerate(path):
            last = depth == len(path) - 1
            nxt = value if last else ([] if isinstance(path[depth + 1], int) else {})
            if isinstance(node, list):
                while len(node) <= key:
                    node.append(None)
                if node[key] is None or last:
                    node[key] = nxt
                node = node[key]
            else:
                if key not in node or last:
                    node[key] = nxt
                node = node[key]
    return root


def describe(value, limit=120):
    """A short text for a baked-in leaf (metadata.json lists them)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
