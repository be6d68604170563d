"""Strategies and expansions; one file each, registered by decorator."""
