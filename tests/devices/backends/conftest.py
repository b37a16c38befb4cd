"""Fixtures of the back-end contract suite (defined in ``backend_rigs``)."""

from backend_rigs import alpaca_server, indi_server, rig

__all__ = ["alpaca_server", "indi_server", "rig"]
