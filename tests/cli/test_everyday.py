"""Everyday-command defects a new user met: progress, the skipped-model table, compare writing, hints, exit codes."""
from __future__ import annotations

import json
import re

from tests.conftest import only_run_dir, run_cli


def test_test_shows_the_same_progress_as_bench(om_home):
    proc = run_cli("test", "--model", "reference", "-n", "3", "--warmup", "1", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "4/4" in proc.stderr and "sample" in proc.stderr        # tqdm's bar, on stderr as for bench
    quiet = run_cli("test", "--model", "reference", "-n", "1", "--warmup", "0", "--device", "cpu", "--json")
    assert "1/1" not in quiet.stderr                                 # --json stays machine-readable


def test_a_skipped_model_is_one_short_row_and_its_details_once_below(om_home):
    proc = run_cli("bench", "--models", "MapTR,reference", "--samples", "2", "--warmup", "0", "--device", "cpu")
    assert proc.returncode == 3, proc.stderr                        # a named model was skipped
    table = proc.stdout.splitlines()
    assert max(len(line) for line in table) < 160, table
    row = next(line for line in table if line.startswith("MapTR"))
    assert "skipped" in row and " -> " not in row
    assert not re.search(r"MapTR:\s+0%", proc.stderr)                  # no empty 0/N bar for the skipped model
    assert proc.stderr.count("  MapTR: ") == 1 and "WARNING" not in proc.stderr


def test_bench_all_means_every_ready_model(om_home):
    proc = run_cli("bench", "--models", "all", "--samples", "1", "--warmup", "0", "--device", "cpu",
                   env={"ONLINEMAP_ENVS": ""})          # the repo's packs only: reference, and five not set up here
    assert proc.returncode == 0, proc.stdout + proc.stderr          # reference ran; the others are listed
    assert "skipped" in proc.stdout and "reference" in proc.stdout


def test_compare_prints_and_never_writes(om_home):
    assert run_cli("test", "--model", "reference", "-n", "1", "--warmup", "0", "--device", "cpu").returncode == 0
    for extra in ([], ["--json"], ["--csv"]):
        proc = run_cli("compare", "--latest", "--models", "all", *extra)
        assert proc.returncode == 0, proc.stderr
        assert "wrote" not in proc.stderr
    assert not (om_home / "reports").exists()
    out = om_home / "cmp"
    proc = run_cli("compare", "--latest", "--out", str(out))
    assert proc.returncode == 0 and (out / "comparison_summary.json").is_file()


def test_the_eval_hint_names_the_model_asked_for(om_home):
    proc = run_cli("eval", "--latest", "--models", "crashref")
    assert proc.returncode == 2 and "onlinemap test --model crashref" in proc.stderr


def test_viz_and_test_agree_on_an_unknown_sample_token(om_home):
    assert run_cli("test", "--model", "reference", "-n", "1", "--warmup", "0", "--device", "cpu").returncode == 0
    run_id = only_run_dir(om_home).name
    viz = run_cli("viz", run_id, "--sample", "deadbeef")
    test = run_cli("test", "--model", "reference", "--sample-token", "deadbeef", "--device", "cpu")
    assert viz.returncode == test.returncode == 3, (viz.stderr, test.stderr)


def test_results_refuses_an_unknown_model_and_a_negative_limit(om_home):
    proc = run_cli("results", "--model", "nosuch")
    assert proc.returncode == 2 and "unknown model 'nosuch'" in proc.stderr and "no runs yet" not in proc.stdout
    assert run_cli("results", "--limit", "-1").returncode == 2


def test_duplicate_entries_are_used_once_with_a_note(om_home):
    ordered = run_cli("test", "--model", "reference", "-n", "3", "--warmup", "0", "--device", "cpu", "--json")
    tokens = [s["sample_token"] for s in map(json.loads, (only_run_dir(om_home) / "samples.jsonl").read_text()
                                             .splitlines())]
    assert ordered.returncode == 0 and len(tokens) == 3
    proc = run_cli("test", "--model", "reference", "--sample-token", tokens[0], "--sample-token", tokens[0],
                   "--warmup", "0", "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["summary"]["samples"]["measured"] == 1 and "more than once" in proc.stderr
    bench = run_cli("bench", "--models", "reference,reference", "--samples", "1", "--warmup", "0", "--device", "cpu",
                    "--json")
    assert bench.returncode == 0 and len(json.loads(bench.stdout)["runs"]) == 1 and "more than once" in bench.stderr
