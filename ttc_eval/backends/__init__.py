"""Backends: engines that generate completions (imported lazily through the registry)."""
