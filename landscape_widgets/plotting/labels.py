"""Axis labels of a landscape's coordinates, shared by the live views and the figures."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the labels need only ``ds.attrs``: no xarray import (fast command line)
    import xarray as xr


def axis_label(name: str, normalization: str | None = None, kind: str | None = None) -> str:
    """E.g. ``'alpha (direction 1, filter-normalized units)'``; ``kind`` is the result's
    ``directions`` attribute (see :mod:`landscape_widgets.analysis.plane_directions`)."""
    index = {"alpha": 1, "beta": 2, "gamma": 3}.get(name, "?")
    if kind == "hessian":
        return f"{name} (Hessian eigenvector {index}, parameter-space distance)"
    if kind == "trajectory":
        return f"{name} (PC{index} of the training path, 1 = its farthest checkpoint)"
    if kind == "axes":
        return f"{name} (coordinate axis {index}: change of one parameter's value)"
    if kind == "two models" and index == 1:
        return f"{name} (towards the second model, 1 = the second model)"
    units = f"{normalization}-normalized units" if normalization not in (None, "none") else "raw units"
    return f"{name} (direction {index}, {units})"


def axis_labels(ds: xr.Dataset, names: tuple[str, ...], normalization: str | None = None) -> list[str]:
    """:func:`axis_label` of each coordinate in ``names``, from the result's
    ``normalization`` (default ``normalization``) and ``directions`` attributes."""
    norm, kind = ds.attrs.get("normalization", normalization), ds.attrs.get("directions")
    return [axis_label(n, norm, kind) for n in names]
