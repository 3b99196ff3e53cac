"""The teaching app served by Voila, and the ``landscape-widgets`` command line."""
