"""wsidesk: whole-slide image desktop for viewing, workflows and cell segmentation."""

__version__ = "0.1.0"
