"""Shared fixtures: paths of the sample data and a driver for the real cmd2 app."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_MODEL = ROOT / "sample_models" / "cifar_net.onnx"
CALIB_DIR = ROOT / "sample_images" / "calib"
TEST_DIR = ROOT / "sample_images" / "test"


@pytest.fixture
def sample_model() -> Path:
    """The committed sample LeNet."""
    return SAMPLE_MODEL


@pytest.fixture
def shell(capsys: pytest.CaptureFixture[str]):  # noqa: ANN201 - returns a small driver class
    """A real NnShell and a ``run(line) -> (ok, out, err)`` helper that captures its output."""
    from nnshell.shell.app import make_app, run_command

    class Driver:
        """Creates the app on first use, inside the test phase (capsys swaps streams per phase)."""

        def __init__(self) -> None:
            self._app = None

        @property
        def app(self):  # noqa: ANN202
            if self._app is None:
                self._app = make_app()
            return self._app

        def run(self, line: str) -> tuple[bool, str, str]:
            capsys.readouterr()
            ok, _ = run_command(self.app, line)
            cap = capsys.readouterr()
            return ok, cap.out, cap.err

    return Driver()
