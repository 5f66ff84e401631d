"""nestd: the daemon that runs a store's drone-delivery nest."""

__version__ = "0.1.0"
