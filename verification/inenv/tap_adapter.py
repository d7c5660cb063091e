"""The pack's real adapter, unchanged, with a tap that keeps each sample's raw model output.

Why. The lane compares the model's raw output with the upstream repo's own formatting function,
so it needs what ``forward`` returned; the worker keeps only ``convert``'s result. The worker loads
this file as the adapter (exactly as it loads ``envs/<Model>/demo.py``); this file loads the real
adapter from ``$ONLINEMAP_VERIFY_ADAPTER`` under the name the worker would give it and delegates
every call; after each ``convert`` it saves ``{sample, raw, state}`` with ``torch.save`` to
``$ONLINEMAP_VERIFY_TAP/<index>.pt`` (``state``: what ``verification/inenv/state_probes.py``
reads off the adapter for temporal models). Runs in the verification venv (Python >= 3.8).
"""
import importlib.util
import os
import sys

_REAL = os.environ["ONLINEMAP_VERIFY_ADAPTER"]
_TAP = os.environ["ONLINEMAP_VERIFY_TAP"]


def _load_real():
    name = "_onlinemap_adapter_" + os.path.basename(os.path.dirname(os.path.abspath(_REAL)))
    spec = importlib.util.spec_from_file_location(name, os.path.abspath(_REAL))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


real = _load_real()
_probes_spec = importlib.util.spec_from_file_location(
    "_onlinemap_verify_state_probes", os.path.join(os.path.dirname(os.path.abspath(__file__)), "state_probes.py"))
probes = importlib.util.module_from_spec(_probes_spec)
_probes_spec.loader.exec_module(probes)


class Adapter(object):
    """Delegates to the real Adapter; records raw outputs and temporal state per sample."""

    def __init__(self, settings):
        self.inner = real.Adapter(settings)
        self.count = 0
        self.before = None

    def load(self):
        result = self.inner.load()
        probes.install(self.inner)
        return result

    def prepare(self, sample):
        inputs = self.inner.prepare(sample)
        self.before = probes.probe(self.inner, "before")
        return inputs

    def forward(self, inputs):
        return self.inner.forward(inputs)

    def convert(self, raw, sample):
        pred = self.inner.convert(raw, sample)
        import torch

        after = probes.probe(self.inner, "after")
        torch.save({"sample": sample, "raw": raw, "state_before": self.before, "state_after": after},
                   os.path.join(_TAP, "%04d.pt" % self.count))
        self.count += 1
        return pred

    def close(self):
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()
