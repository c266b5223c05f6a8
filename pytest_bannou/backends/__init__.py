"""Engines that run a topology. See ``base.Backend``; ``registry`` finds them by name."""
