"""The ``rempart`` command line (design.md, outside interface)."""
