"""The built-in per-point metrics of a result, importable without xarray (the command
line's ``plot`` reads results without it); :mod:`.results` re-exports them."""

METRICS: tuple[str, ...] = ("loss", "accuracy")
