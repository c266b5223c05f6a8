"""pytest-bannou: test environments for bannou, deployed per preset and torn down after."""

__version__ = "0.1.0"
