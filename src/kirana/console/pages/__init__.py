"""One module per console section; each has a ``router``."""
