"""Sweeps: a grid of config values x seeds as one vmapped program (`grid`, `task`), its outputs (`sinks`) and report."""
