"""Analyses from the literature: interpolation, trajectories, comparison, curvature,
sharpness, mode connectivity and ensembling. They build on the core only."""
