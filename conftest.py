"""Repository-root pytest configuration: lets tests and doctests import the packages from
a plain checkout (CI installs the project with ``pip install -e``, which does the same)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
