"""Nightrunner: a declarative observatory sequencer."""
