"""ttc-eval: an evaluation harness for test-time compute scaling."""

__version__ = "0.1.0"
