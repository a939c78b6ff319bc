"""Status bar texts for the slide viewer: on-screen magnification and the cursor's position."""

from __future__ import annotations


def magnification_text(scale: float, objective: float | None) -> str:
    """'10.0× (zoom 50.0%)' from screen px per level-0 px and the scanner's objective power (20, 40, ...).

    Without an objective power only the zoom is known.
    """
    zoom = f"zoom {scale * 100:.1f}%"
    if not objective:
        return zoom
    power = objective * scale
    shown = f"{power:.1f}" if power < 10 else f"{power:.0f}"
    return f"{shown}× ({zoom})"


def position_text(x: float, y: float, mpp: float | None) -> str:
    """The cursor in µm from the slide's top-left (and in level-0 px); px only when µm/px is unknown."""
    px = f"{x:,.0f}, {y:,.0f} px"
    if not mpp:
        return f"x, y {px}"
    return f"x {x * mpp:,.1f} µm  y {y * mpp:,.1f} µm  ({px})"
