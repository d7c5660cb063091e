"""``onlinemap results --limit N`` reads only the newest run folders (issue 16: it read every
run.json and tried every metrics.json to print 30 rows)."""
from __future__ import annotations

import json
import shutil

from tests.conftest import only_run_dir, run_cli


def test_results_reads_only_the_newest_limit_folders(om_home):
    assert run_cli("test", "--model", "crashref", "-n", "2", "--warmup", "0", "--device", "cpu",
                   "--no-telemetry").returncode == 0
    newest = only_run_dir(om_home)
    results = newest.parent
    # two older copies (folder names sort by time); the oldest run.json is unreadable
    for i, name in enumerate(("20000101-000000-crashref-aaaa", "20000101-000001-crashref-bbbb")):
        dest = results / name
        shutil.copytree(newest, dest)
        rec = json.loads((dest / "run.json").read_text())
        rec["run_id"] = name
        (dest / "run.json").write_text(json.dumps(rec))
    (results / "20000101-000000-crashref-aaaa" / "run.json").write_text("{not json")

    proc = run_cli("results", "--limit", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [r["run_id"] for r in json.loads(proc.stdout)] == [newest.name]
    assert "skipping" not in proc.stderr          # the oldest folder was never opened

    proc = run_cli("results", "--limit", "1")
    assert proc.returncode == 0 and "skipping" not in proc.stderr
    assert "2 older run folders not shown" in proc.stdout

    proc = run_cli("results", "--limit", "0", "--json")
    assert proc.returncode == 0 and "skipping 20000101-000000-crashref-aaaa" in proc.stderr
    assert len(json.loads(proc.stdout)) == 2


def test_a_negative_limit_is_a_usage_error(om_home):
    assert run_cli("results", "--limit", "-1").returncode == 2
