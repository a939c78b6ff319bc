"""Run dashboard: per-run/job/tile progress, logs, controls and scheduler statistics."""

from wsidesk.gui.dashboard.run_dashboard import RunDashboard
from wsidesk.gui.dashboard.stats import StatsPanel

__all__ = ["RunDashboard", "StatsPanel"]
