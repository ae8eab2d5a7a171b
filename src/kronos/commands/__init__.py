"""The `kronos` command line."""
