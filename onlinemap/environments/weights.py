"""Download a model's checkpoint to ``ONLINEMAP_HOME/weights/<file>``: resumable, verified, atomic.

The bytes go to ``<file>.part``; a rerun resumes it with an HTTP ``Range`` request (a server that
answers 200 instead of 206 restarts it). When the whole file is there its sha256 is compared with
``model.toml [checkpoint] sha256``: a mismatch deletes the ``.part`` (it is never used) and raises;
a match renames it into place with ``os.replace``, so ``weights/<file>`` only ever holds a verified
file. When the sha256 is not pinned yet (``""``), the computed one is recorded in ``<file>.sha256``
and a warning says so. Google-Drive-only checkpoints cannot be fetched without a cookie dance that
breaks often: the error gives the one ``gdown`` command that does it.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from onlinemap import paths
from onlinemap.errors import MissingPrerequisiteError, OnlinemapError
from onlinemap.registry.spec import ModelSpec

__all__ = ["ensure_weights", "download", "sha256_file", "WeightsError"]

CHUNK = 1 << 20


class WeightsError(OnlinemapError):
    """A download failed or its sha256 does not match the pinned one."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _is_gdrive(url: str) -> bool:
    return "drive.google.com" in url or "docs.google.com" in url


def download(url: str, dest: Path, *, sha256: str = "", progress: Callable[[str], None] = print,
             timeout_s: float = 60.0) -> str:
    """Fetch ``url`` to ``dest`` via ``dest.part`` (resumed), check ``sha256`` when given; return the digest."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    paths.ensure_dir(dest.parent)
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "onlinemap"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:       # the .part is already complete
            resp = None
        else:
            raise WeightsError(f"download of {url} failed: HTTP {exc.code} {exc.reason}",
                               "check the URL in model.toml and the network, then rerun") from None
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsError(f"download of {url} failed: {getattr(exc, 'reason', exc)}",
                           f"check the network, then rerun (the partial file {part.name} is resumed)") from None
    if resp is not None:
        with resp:
            status = getattr(resp, "status", 200)
            mode = "ab" if (have and status == 206) else "wb"
            if have and status != 206:
                progress(f"  server ignored the resume request: restarting {dest.name}")
                have = 0
            elif have:
                progress(f"  resuming {dest.name} at {have / 1e6:.1f} MB")
            total = resp.headers.get("Content-Length")
            total_b = int(total) + have if total and total.isdigit() else None
            done, last = have, 0
            with open(part, mode) as fh:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    fh.write(block)
                    done += len(block)
                    if done - last >= 64 * CHUNK:
                        last = done
                        pct = f" ({100 * done / total_b:.0f}%)" if total_b else ""
                        progress(f"  {dest.name}: {done / 1e6:.0f} MB{pct}")
                fh.flush()
                os.fsync(fh.fileno())
    digest = sha256_file(part)
    if sha256 and digest != sha256:
        part.unlink(missing_ok=True)
        raise WeightsError(f"{dest.name}: sha256 {digest[:12]}… does not match the pinned {sha256[:12]}…; "
                           f"the download was deleted and not used",
                           f"check [checkpoint] url/sha256 in model.toml; rerun to download again")
    os.replace(part, dest)
    return digest


def ensure_weights(spec: ModelSpec, *, progress: Callable[[str], None] = print,
                   warn: Callable[[str], None] | None = None) -> Path | None:
    """``weights/<file>`` verified (downloaded when missing); None when the model has no checkpoint."""
    ck = spec.checkpoint
    if ck is None or not ck.file:
        return None
    warn = warn or progress
    dest = paths.weights_dir() / ck.file
    side = dest.with_name(dest.name + ".sha256")
    if dest.is_file():
        digest = sha256_file(dest)
        if ck.sha256 and digest != ck.sha256:
            bad = dest.with_name(dest.name + ".mismatch")
            os.replace(dest, bad)
            progress(f"[{spec.name}] weights: {dest} has sha256 {digest[:12]}…, pinned {ck.sha256[:12]}…; moved to {bad.name}")
        else:
            if not ck.sha256:
                _record_unpinned(side, digest, spec, warn)
            progress(f"[{spec.name}] weights: {dest} ({'verified' if ck.sha256 else 'sha256 not pinned'})")
            return dest
    if ck.gdrive_id and (not ck.url or _is_gdrive(ck.url)):
        raise MissingPrerequisiteError(
            f"{spec.name}: checkpoint {ck.file} is on Google Drive only and cannot be fetched automatically",
            f"pip install gdown && gdown {ck.gdrive_id} -O {dest}  then rerun `onlinemap env create {spec.name}`")
    progress(f"[{spec.name}] weights: downloading {ck.url} -> {dest}")
    digest = download(ck.url, dest, sha256=ck.sha256, progress=progress)
    if not ck.sha256:
        _record_unpinned(side, digest, spec, warn)
    progress(f"[{spec.name}] weights: {dest} ready (sha256 {digest[:12]}…)")
    return dest


def _record_unpinned(side: Path, digest: str, spec: ModelSpec, warn: Callable[[str], None]) -> None:
    try:
        recorded = side.read_text().split()[0]
    except (OSError, IndexError):
        recorded = None
    if recorded != digest:
        tmp = side.with_name(side.name + ".tmp")
        tmp.write_text(f"{digest}  {spec.checkpoint.file}\n")
        os.replace(tmp, side)
    warn(f"warning: {spec.name}: checkpoint sha256 is not pinned in model.toml; computed {digest} "
         f"(recorded in {side}); pin it as [checkpoint] sha256 after checking the file")
