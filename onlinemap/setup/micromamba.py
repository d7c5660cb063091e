"""Install a pinned, sha256-verified micromamba into ``ONLINEMAP_HOME/bin/micromamba``.

The pin: micromamba 1.5.8-0 linux-64 from github.com/mamba-org/micromamba-releases; its sha256 was
taken from cashapp/hermit-packages ``micromamba.hcl`` (the same value in three stored versions of that
file). It was NOT downloaded and re-hashed here (no network beyond PyPI): the first real install
verifies it, and a mismatch refuses the binary. 1.5.8 installs conda-lock files with
``create -f <name>-lock.yml`` (managers.py).

The bytes go to ``micromamba.part``; only a file whose sha256 matches is made executable and moved
into place (``os.replace``), and ``micromamba.json`` ({version, url, sha256, verified}) is written
last, so ``bin/micromamba`` is never an unverified binary unless ``--allow-unverified`` was given for
a URL without a pinned sha256 (``ONLINEMAP_MICROMAMBA_URL`` without ``ONLINEMAP_MICROMAMBA_SHA256``).
When another conda manager is already usable (``$MAMBA_EXE``, ``$CONDA_EXE``, PATH) nothing is downloaded.
"""
from __future__ import annotations

import json
import os
import platform
import stat
import subprocess
from pathlib import Path
from typing import Callable, Optional

from onlinemap import paths
from onlinemap.errors import MissingPrerequisiteError, OnlinemapError
from onlinemap.setup.stages import CheckResult, SetupContext, Stage, StageLog, fault_point

__all__ = ["MICROMAMBA_VERSION", "MICROMAMBA_SHA256", "micromamba_url", "install_micromamba", "check_micromamba",
           "micromamba_stage", "MicromambaError", "INFO_FILE"]

MICROMAMBA_VERSION = "1.5.8-0"
#: sha256 of micromamba-linux-64 1.5.8-0 (source: cashapp/hermit-packages micromamba.hcl)
MICROMAMBA_SHA256 = {"linux-64": "b32122ae721024883e97d8ec03f1b6e64bc8fd0e3d5008e1f13dd1e7989497f9"}
_URL = "https://github.com/mamba-org/micromamba-releases/releases/download/{version}/micromamba-{platform}"
INFO_FILE = "micromamba.json"


class MicromambaError(OnlinemapError):
    """Downloading or verifying micromamba failed."""


def _platform() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "linux-64", "amd64": "linux-64", "aarch64": "linux-aarch64"}.get(machine, f"linux-{machine}")


def micromamba_url() -> tuple[str, str]:
    """(url, expected sha256 or "") honouring ONLINEMAP_MICROMAMBA_URL / _SHA256 (mirrors, tests)."""
    override = os.environ.get("ONLINEMAP_MICROMAMBA_URL")
    if override:
        return override, os.environ.get("ONLINEMAP_MICROMAMBA_SHA256", "").lower()
    plat = _platform()
    return _URL.format(version=MICROMAMBA_VERSION, platform=plat), MICROMAMBA_SHA256.get(plat, "")


def _target() -> Path:
    return paths.bin_dir() / "micromamba"


def _runs(exe: Path) -> Optional[str]:
    try:
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or "?") if out.returncode == 0 else None


def check_micromamba(ctx: Optional[SetupContext] = None) -> CheckResult:
    """OK when bin/micromamba is installed with a verified record and runs, or another manager is usable."""
    from onlinemap.environments.managers import discover_managers

    target = _target()
    info_path = target.with_name(INFO_FILE)
    if target.is_file():
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            info = None
        if info is None:
            return CheckResult(False, f"{target} exists but has no {INFO_FILE} (not installed by onlinemap, or an "
                                      "interrupted install)", "onlinemap setup stage micromamba")
        version = _runs(target)
        if version is None:
            return CheckResult(False, f"{target} does not run (`micromamba --version` failed)",
                               "onlinemap setup stage micromamba")
        how = "sha256 verified" if info.get("verified") else "UNVERIFIED (--allow-unverified)"
        return CheckResult(True, f"{target} {version} ({how})")
    others = [m for m in discover_managers() if m.source != "ONLINEMAP_HOME/bin"]
    if others:
        m = others[0]
        return CheckResult(True, f"using {m.name} {m.exe} (via {m.source}); nothing to download")
    return CheckResult(False, f"no conda manager: {target} missing and none on PATH/$MAMBA_EXE/$CONDA_EXE",
                       "onlinemap setup stage micromamba")


def install_micromamba(*, allow_unverified: bool = False, progress: Callable[[str], None] = print) -> Path:
    """Download, verify and install micromamba; return its path. Nothing is left in place on failure."""
    from onlinemap.environments.weights import WeightsError, download

    url, sha = micromamba_url()
    if not sha and not allow_unverified:
        raise MissingPrerequisiteError(f"no sha256 pinned for micromamba at {url}: refusing an unverified binary",
                                       "set ONLINEMAP_MICROMAMBA_SHA256, or pass --allow-unverified if you trust it")
    target = _target()
    paths.ensure_dir(target.parent)
    staging = target.with_name("micromamba.download")
    progress(f"downloading micromamba from {url}" + (f" (sha256 {sha[:12]}…)" if sha else " (UNVERIFIED)"))
    target.with_name(INFO_FILE).unlink(missing_ok=True)
    try:
        digest = download(url, staging, sha256=sha, progress=progress, timeout_s=60)
    except WeightsError as exc:
        raise MicromambaError(exc.message.replace("the download was deleted", "the micromamba download was deleted"),
                              f"check the network (github.com must be reachable), or put micromamba/conda on PATH; "
                              f"then `onlinemap setup stage micromamba`") from None
    fault_point("micromamba")
    staging.chmod(staging.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    if _runs(staging) is None:
        staging.unlink(missing_ok=True)
        raise MicromambaError(f"the downloaded micromamba ({url}) does not run on this machine",
                              "check the platform in the URL (linux-64 / linux-aarch64)")
    os.replace(staging, target)
    tmp = target.with_name(INFO_FILE + ".tmp")
    tmp.write_text(json.dumps({"version": MICROMAMBA_VERSION if not os.environ.get("ONLINEMAP_MICROMAMBA_URL")
                               else None, "url": url, "sha256": digest, "verified": bool(sha)}) + "\n")
    os.replace(tmp, target.with_name(INFO_FILE))
    progress(f"installed {target} (sha256 {digest[:12]}…{'' if sha else ', UNVERIFIED'})")
    return target


def _skip(ctx: SetupContext) -> Optional[str]:
    if not ctx.conda_models:
        return "no conda model selected (the reference model runs in the driver's Python)"
    return None


def _run(ctx: SetupContext, log: StageLog) -> None:
    install_micromamba(allow_unverified=ctx.allow_unverified, progress=log)


def micromamba_stage() -> Stage:
    url, sha = micromamba_url()
    return Stage("micromamba", f"install micromamba {MICROMAMBA_VERSION} into ONLINEMAP_HOME/bin from {url} "
                               f"({'sha256 ' + sha[:12] + '…' if sha else 'no sha256 pinned'})",
                 lambda ctx: check_micromamba(ctx), _run, _skip, needs=("system",))
