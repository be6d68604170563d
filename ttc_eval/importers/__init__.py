"""Importers: other tools' sample dumps converted into ttc-eval runs; one file per format."""
