"""A small, real implementation of a bannou node's contract (and of its testers' output)."""
