"""The numeric core: objective, parameters, directions, grids, data, evaluation, streaming,
results. It imports no widget library and no demo code, so it runs headless, in tests
and on Dask workers."""
