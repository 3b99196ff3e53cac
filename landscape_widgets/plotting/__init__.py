"""Static matplotlib figures of results, for papers and notebooks."""
