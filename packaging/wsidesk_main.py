"""Entry point of the packaged (PyInstaller) wsidesk: the same command line as the `wsidesk` script."""

from __future__ import annotations

import multiprocessing
import sys

if __name__ == "__main__":
    # A frozen program re-executes itself for multiprocessing children; this lets them start.
    multiprocessing.freeze_support()
    from wsidesk.cli import main

    sys.exit(main())
