"""Live widgets: views that redraw as points arrive, and the explorer that drives them.

Importing this package imports ipywidgets, bqplot and ipyvolume; the numeric core
(:mod:`landscape_widgets`) does not.
"""

from .builtin_demo import demo
from .explorer import LandscapeExplorer, Settings
from .progress import ProgressView, format_progress
from .runner import Runner, Snapshot, landscape_stream
from .views import ContourView, LineView, SliceView
from .volume_views import IsosurfaceView, SurfaceView

__all__ = [
    "ContourView", "IsosurfaceView", "LandscapeExplorer", "demo", "LineView", "ProgressView", "Runner", "Settings",
    "SliceView", "Snapshot", "SurfaceView", "format_progress", "landscape_stream",
]
