"""Profile switcher."""

from wsidesk.gui.profiles.switcher import ProfileSwitcher

__all__ = ["ProfileSwitcher"]
