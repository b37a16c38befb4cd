"""Live stacking: calibration masters, star detection, registration, rejection, stretch."""

from runner.stacking.detect import Stars, detect_stars, measure_hfr

__all__ = ["Stars", "detect_stars", "measure_hfr"]
