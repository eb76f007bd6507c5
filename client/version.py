"""This install's version, for the CLI's fast path (which must not import the daemon package).
Equal to daemon.__version__: tests/test_packaging.py checks it."""

__version__ = "0.1.0"
