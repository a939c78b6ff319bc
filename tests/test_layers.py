"""Architecture rules: the core is Qt-free and imports heavy libraries lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_importing_core_loads_neither_torch_nor_qt_nor_dask():
    code = (
        "import sys, importlib, pkgutil, wsidesk.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'wsidesk.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "heavy = {'torch', 'instanseg', 'PySide6', 'pyqtgraph', 'dask', 'distributed'}\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in heavy)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def test_import_linter_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "core is Qt-free KEPT" in out.stdout
