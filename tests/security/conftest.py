"""Attacks as regression tests (SECURITY.md). The suite's helpers live one folder up."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
