"""Where the peer tools' venvs are: ``benchmarks/setup_peer_tools.sh`` makes them under
``$DSE_PEER_VENVS`` (default ``~/.cache/dse-peer-venvs``), one per tool; the tests and the
benchmark scripts look there."""

from __future__ import annotations

import os
from pathlib import Path


def venv_root() -> Path:
    return Path(os.environ.get("DSE_PEER_VENVS") or Path.home() / ".cache" / "dse-peer-venvs")


def peer_python(name: str) -> Path:
    """The Python of the ``name`` venv (``scalesim``, ``zigzag``, ``chakra``, ``genz``,
    ``llm-analysis``); it may not exist (run ``benchmarks/setup_peer_tools.sh``)."""
    return venv_root() / name / "bin" / "python"
