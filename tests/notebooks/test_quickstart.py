"""docs/notebooks/quickstart.ipynb runs top to bottom with nbclient (any cell error fails the test)."""
from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(om_home, test_kernel, monkeypatch, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("NUSCENES_ROOT")            # the notebook writes its own synthetic dataset
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel listens on 127.0.0.1 only (jupyter_client's default); nothing is exposed
    client = NotebookClient(nb, kernel_name=test_kernel, timeout=240,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the latency plot was not drawn"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "reference: ok, forward p50" in text
    assert (om_home / "data" / "nuscenes-synth" / "v1.0-mini").is_dir()
    runs = [p for p in (om_home / "results").iterdir() if not p.name.startswith(".")]
    assert len(runs) == 2 and (om_home / "results" / ".cache").is_dir()
