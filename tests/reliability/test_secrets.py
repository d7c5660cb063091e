"""No secret from the environment reaches run.json or any other result file: only allow-listed variables."""
from __future__ import annotations

import json

from tests.conftest import only_run_dir, run_cli

SECRETS = {"RUNPOD_API_KEY": "rp-sekrit-0001", "AWS_SECRET_ACCESS_KEY": "aws-sekrit-0002", "HF_TOKEN": "hf-sekrit-0003",
           "WANDB_API_KEY": "wb-sekrit-0004", "MY_PASSWORD": "pw-sekrit-0005"}


def test_secrets_in_the_environment_are_never_written(om_home):
    env = dict(SECRETS, RUNPOD_POD_ID="pod-abc123")
    proc = run_cli("test", "--model", "reference", "-n", "2", "--warmup", "0", "--device", "cpu", env=env)
    assert proc.returncode == 0, proc.stderr
    run = only_run_dir(om_home)
    for path in run.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            for name, value in SECRETS.items():
                assert value not in text, f"{name} leaked into {path.name}"
    record = json.loads((run / "run.json").read_text())
    assert "pod-abc123" in json.dumps(record["host"])  # the allow-listed pod id is recorded
