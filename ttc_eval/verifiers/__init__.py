"""Verifiers: step-level scorers (imported lazily through the registry)."""
