"""Built-in data and models that need no download, their training, named presets and
the wedge toy model. Only notebooks, the app and tests use it; the core never does."""
