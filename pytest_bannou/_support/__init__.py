"""Small helpers every room may use: atomic files, process checks, secret masking, names."""
