"""wsidesk: whole-slide image desktop for viewing, workflows and cell segmentation."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One source: pyproject's [project] version, through the installed (or bundled) package metadata.
    __version__ = version("wsidesk")
except PackageNotFoundError:  # a frozen bundle built without copy_metadata("wsidesk"), or an uninstalled tree
    __version__ = "0+unknown"
