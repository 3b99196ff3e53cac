"""Runs on disk and on many machines: resumable stores, the result cache, Dask."""
