"""The package version, readable from every layer (the root package re-exports it)."""

__version__ = "0.1.0"
