"""Plumbing shared by every layer: paths, the one atomic write, the one process pool, devices."""
