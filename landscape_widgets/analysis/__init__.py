"""Analyses from the literature: interpolation, trajectories, comparison, curvature,
sharpness, mode connectivity, ensembling, permutation symmetry, m-tunnels (simplex),
short directions, radial structure, PAL (line_search), local entropy (smoothing), plane
directions by kind and the trust statistics. They build on the core only."""
