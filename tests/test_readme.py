"""A new user's first day, as the README says it: clone into the pod volume, set up from its parent folder,
then every command line of the README's "Everyday use" block, read from README.md (so it cannot drift).

The pod is simulated: ``ONLINEMAP_VOLUME`` (RunPod's volume mount path, default /workspace) is a
temporary folder, ``HOME`` a fresh one, ``ONLINEMAP_HOME`` unset, and the clone is a real ``git clone``
of this checkout (with the working tree's changes committed in the clone) at ``<volume>/onlinemap``:
exactly ``cd /workspace && git clone … && cd onlinemap``. ``cd <volume> && ./onlinemap/runpod_setup.sh``
then runs for real (its venv stage included: the pip installs, the compat editable install of the clone,
the kernel registration), with one shortcut: the venv it finds already sees this test venv's
site-packages through a ``.pth`` line, so pip answers "already satisfied" instead of downloading torch.
crontab is the test-only stand-in of tests/nightly/test_cron.py (``$ONLINEMAP_CRONTAB``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from onlinemap.setup.data import SYNTH_SIZE_ENV   # setup's and `data synth`'s default size: SxN
from tests.conftest import REPO
from tests.nightly.test_cron import FAKE as FAKE_CRONTAB

pytestmark = pytest.mark.slow

BENCH_SAMPLES = 205      # `bench --samples 200` + 5 warm-up
SETUP_SYNTH_SIZE = (7, 30)               # 210 samples >= BENCH_SAMPLES
DATA_SYNTH_SIZE = (2, 10)


def everyday_lines(readme: Path = REPO / "README.md") -> list[str]:
    """The command lines of the first ```bash block under "## Everyday use", comments stripped."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("## Everyday use", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_block_is_found_and_complete():
    lines = everyday_lines()
    assert lines[0].startswith("source ") and "onlinemap nightly && onlinemap cron install" in lines
    assert "onlinemap bench --models all --samples 200" in lines and "./quick_test_models.sh" in lines


def _clone(dest: Path) -> Path:
    """A real clone of this checkout, its working tree (tracked + new, unignored files) committed on top."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(dest)], check=True, timeout=300)
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(dest)]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "--quiet", "--allow-empty", "-m", "working tree"], check=True)
    return dest


def _seed_venv(venv: Path) -> None:
    """A plain venv that sees this test venv's packages (torch, nuscenes …) through one .pth line."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=600)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


def _bash(script: str, env: dict, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.mark.timeout(3600)      # a real setup, a 205-sample bench and a 55-sample night on a shared CPU
def test_first_day_on_a_pod_runs_every_everyday_line(tmp_path):
    volume = tmp_path / "workspace"
    volume.mkdir()
    clone = _clone(volume / "onlinemap")
    home = volume / "onlinemap-home"
    _seed_venv(home / "venv")
    user_home = tmp_path / "root"
    user_home.mkdir()
    crontab = tmp_path / "crontab"
    crontab.write_text(FAKE_CRONTAB.format(python=sys.executable))
    crontab.chmod(0o755)
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ONLINEMAP_", "NUSCENES_", "VIRTUAL_ENV", "PYTHON", "JUPYTER"))}
    env.update(HOME=str(user_home), ONLINEMAP_VOLUME=str(volume), ONLINEMAP_CRONTAB=str(crontab),
               FAKE_CRONTAB_FILE=str(tmp_path / "table.txt"),
               PATH=os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin))

    # The synthetic sets are smaller than the default v1.0-mini size (10x40; writing one is the slowest step here,
    # and the README writes two): setup's is just big enough for `bench --samples 200` (+5 warm-up), which every
    # later line then uses; `data synth ~/nuscenes-synth` is read by no later line, so it gets a token size.
    assert SETUP_SYNTH_SIZE[0] * SETUP_SYNTH_SIZE[1] >= BENCH_SAMPLES
    env[SYNTH_SIZE_ENV] = "%dx%d" % SETUP_SYNTH_SIZE
    # cd /workspace && ./onlinemap/runpod_setup.sh  (from the folder that holds the clone)
    setup = _bash("./onlinemap/runpod_setup.sh", env, volume, timeout=1800)
    assert setup.returncode == 0, setup.stdout[-4000:] + setup.stderr[-4000:]
    assert "(dry run" not in setup.stdout and "reference: ok" in setup.stdout
    assert "(%d scenes x %d samples)" % SETUP_SYNTH_SIZE in setup.stdout
    assert f"onlinemap home: {home}" in setup.stdout
    assert "needs an NVIDIA GPU" in setup.stdout and "no conda model selected" in setup.stdout   # says what it skipped
    assert "Done. To use onlinemap" in setup.stdout and "onlinemap doctor" in setup.stdout
    assert (home / "setup" / "smoke-reference.json").is_file()
    assert (user_home / ".local" / "share" / "jupyter" / "kernels" / "onlinemap-driver" / "kernel.json").is_file()
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                            capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout                     # nothing of the home inside the clone

    # from the parent folder too: the package imports (not as the clone's empty namespace folder)
    probe = _bash(f"{home}/venv/bin/python -c 'import onlinemap; print(onlinemap.__version__, onlinemap.__file__)'",
                  env, volume, timeout=120)
    assert probe.returncode == 0 and probe.stdout.split()[1] == str(clone / "onlinemap" / "__init__.py"), probe

    lines = everyday_lines()
    script = ["cd " + str(clone)]
    logs = tmp_path / "lines"
    logs.mkdir()
    for i, line in enumerate(lines):
        line = line.replace("/workspace/", f"{volume}/")
        script.append(f"{{ {line} ; }} > {logs}/{i}.out 2>&1 </dev/null; echo $? > {logs}/{i}.rc")
    run = _bash("\n".join(script), {**env, SYNTH_SIZE_ENV: "%dx%d" % DATA_SYNTH_SIZE}, volume, timeout=3600)
    assert run.returncode == 0, run.stderr[-2000:]
    failed = []
    for i, line in enumerate(lines):
        rc = int((logs / f"{i}.rc").read_text())
        if rc != 0:
            failed.append(f"{line!r} exited {rc}:\n{(logs / f'{i}.out').read_text()[-2500:]}")
    assert not failed, "\n\n".join(failed)
    assert "onlinemap nightly" in (tmp_path / "table.txt").read_text()       # cron install really ran
    written = json.loads((user_home / "nuscenes-synth" / "SYNTHETIC.json").read_text())   # data synth really wrote
    assert written["complete"] and (written["scenes"], written["samples"]) == (DATA_SYNTH_SIZE[0], DATA_SYNTH_SIZE[0] * DATA_SYNTH_SIZE[1]), written
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                            capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout                                 # nor after a day of use
