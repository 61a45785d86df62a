"""scripts/convert_checkpoint_v1.py as a module for the tests (it lives outside the library)."""

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "convert_checkpoint_v1.py"
_SPEC = importlib.util.spec_from_file_location("convert_checkpoint_v1", _PATH)
io_v1 = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(io_v1)
