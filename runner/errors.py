"""The one exception tree of Nightrunner.

Every adapter converts vendor and wire errors at its boundary (``raise ... from exc``) into the
most specific class here, so callers handle *our* errors and never a library's::

    NightrunnerError
    ├── PlanError                 a plan or equipment file is invalid (carries diagnostics)
    ├── DeviceError               a device operation failed
    │   ├── DeviceTimeout         it did not finish within its timeout
    │   ├── DeviceDisconnected    the device is gone (connection lost, not connected)
    │   ├── DeviceBusy            it is doing something else (exposure in progress, moving)
    │   └── CentringFailed        plate-solved centring did not converge in its attempts
    ├── GuiderError               PHD2 (or the simulated guider) refused or failed
    │   ├── SettleFailed          settling did not complete (timeout, star lost, stopped)
    │   └── GuiderConnectionError the event-server connection dropped or cannot be opened
    ├── StackingError             a frame could not be calibrated, registered or accumulated
    │   └── RegistrationError     a frame's stars could not be matched to the reference
    ├── SolveError                a frame could not be plate-solved (no match, time limit)
    │   ├── SolverMissing         solve-field or its index files are not installed
    │   └── NoSolution            the search ended without a match (not the time limit)
    ├── RunAborted                an abort was requested (RPC, CLI, signal, unsafe weather)
    └── RunLockedError            another run holds the data directory
"""

from __future__ import annotations


class NightrunnerError(Exception):
    """Root of every error Nightrunner raises on purpose."""


class PlanError(NightrunnerError):
    """A plan or equipment profile is invalid; ``diagnostics`` lists every problem found."""

    def __init__(self, message: str, diagnostics: list[object] | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []


class DeviceError(NightrunnerError):
    """A device operation failed."""


class DeviceTimeout(DeviceError):
    """A device operation did not finish within its timeout."""


class DeviceDisconnected(DeviceError):
    """The device is not connected (or the connection was lost)."""


class DeviceBusy(DeviceError):
    """The device is busy with another operation."""


class CentringFailed(DeviceError):
    """Slew-and-centre ran out of attempts (a device error, so the step's policy applies)."""


class GuiderError(NightrunnerError):
    """The guider refused a request or failed."""


class SettleFailed(GuiderError):
    """Settling after guide/dither did not complete successfully."""


class GuiderConnectionError(GuiderError):
    """The guider connection dropped or could not be opened."""


class StackingError(NightrunnerError):
    """A frame could not be processed by the stacker."""


class RegistrationError(StackingError):
    """A frame's stars could not be matched to the reference (too few, clouds, other field)."""


class SolveError(NightrunnerError):
    """A frame could not be plate-solved (no match, the time limit ran out, solver failed)."""


class SolverMissing(SolveError):
    """The plate solver (astrometry.net's solve-field) or its index files are not installed."""


class NoSolution(SolveError):
    """The solver searched all it had and found no match, with time left: what the hinted
    matcher (``runner.solve.hinted``) is tried after."""


class RunAborted(NightrunnerError):
    """An abort was requested; the safe shutdown runs next."""


class RunLockedError(NightrunnerError):
    """Another run holds the lock on this data directory."""


class ConfigError(NightrunnerError):
    """A setting of the command line or the control plane cannot be used as given."""
