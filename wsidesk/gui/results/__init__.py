"""Results workbench: inspect, measure, colour, classify, filter and export a finished segmentation."""

from wsidesk.gui.results.workbench import ResultsWorkbench

__all__ = ["ResultsWorkbench"]
