"""The built wheel installs into a fresh virtual environment and works from a folder that has its own
``models/`` package (the clash a top-level ``models`` module would cause): ``gpuplan plan`` on the shipped
example, ``python -m gpuplan`` and the API import, all from the installed copy, not the repository.

The wheel is built offline (``--no-build-isolation`` with the dev extra's setuptools) from a copy of
the sources; dependencies come from the test environment's site-packages through a .pth file, so
nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "gpuplan", "models", "hardware", "pricing", "optimizer"]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.wheel
def test_wheel_installs_and_runs_from_a_folder_with_models(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    built = _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q",
                  "-w", str(tmp_path / "dist")], src)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("gpuplan-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"gpuplan", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    assert "gpuplan/models/catalog.csv" in names and "gpuplan/hardware/gpus.csv" in names
    assert any(n.endswith("dist-info/licenses/LICENSE") for n in names)

    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path).returncode == 0
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path).stdout.strip())
    (site / "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                      str(wheel)], tmp_path)
    assert installed.returncode == 0, installed.stderr[-2000:]

    user = tmp_path / "user"
    (user / "models").mkdir(parents=True)
    (user / "models" / "__init__.py").write_text("raise ImportError('the user models package was imported')\n")
    shutil.copy2(REPO / "examples" / "steady.yaml", user / "steady.yaml")
    plan = _run([str(venv / "bin" / "gpuplan"), "plan", "steady.yaml", "--format", "json"], user)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert json.loads(plan.stdout)["status"] in ("optimal", "feasible")
    module = _run([str(py), "-m", "gpuplan", "--version"], user)
    assert module.returncode == 0 and "0." in module.stdout
    api = _run([str(py), "-c", "import gpuplan, gpuplan.optimizer as o; from gpuplan import plan, memory; "
                "print(gpuplan.__file__); print(memory('llama-3.1-8b', context=1024).weights_bytes)"], user)
    assert api.returncode == 0, api.stderr[-2000:]
    where, weights = api.stdout.split()
    assert Path(where).is_relative_to(venv)  # the installed copy, not the repository
    assert int(weights) == 16_060_522_496  # Llama 3.1 8B: 8,030,261,248 parameters × 2 bytes (bf16)
