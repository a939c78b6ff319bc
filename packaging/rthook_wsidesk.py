"""PyInstaller runtime hook: runs in the packaged wsidesk before any of its imports."""

import os

# pyqtgraph picks a Qt binding at import time; the bundle carries only PySide6.
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
