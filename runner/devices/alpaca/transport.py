"""The boundary between Nightrunner and alpyca.

alpyca is synchronous: every property read or method call is an HTTP request made with
``requests``. :func:`call` runs one such call in a worker thread (``asyncio.to_thread``) under
an ``asyncio`` timeout, and converts whatever alpyca or ``requests`` raised into
:mod:`runner.errors` — the only place in the Alpaca back-end that knows those exception types.

Two alpyca facts shape this module (see ``docs/backends.md``):

* alpyca holds one process-wide lock around every HTTP request (its ClientTransactionID
  counter), so requests to all Alpaca devices are serialised; its own per-request HTTP timeout
  is 5 s except for image downloads, which have none — the asyncio timeout here bounds the
  wait, but a worker thread blocked on a dead socket finishes only when the socket does.
* ASCOM "not implemented" answers are a capability statement, not a failure;
  :class:`Unsupported` lets an adapter tell the two apart without catching vendor types.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import requests
from alpaca import exceptions as ax

from runner.errors import DeviceDisconnected, DeviceError, DeviceTimeout

T = TypeVar("T")

#: Seconds one ordinary Alpaca request may take (alpyca's own HTTP timeout is 5 s).
DEFAULT_TIMEOUT = 10.0


class Unsupported(DeviceError):
    """The driver answered NotImplemented / PropertyNotImplemented for this member."""


def convert(exc: BaseException, what: str) -> DeviceError:
    """The most specific :mod:`runner.errors` class for an alpyca/requests exception."""
    detail = str(exc) or type(exc).__name__
    message = f"{what}: {detail}"
    if isinstance(exc, DeviceError):
        return exc
    if isinstance(exc, ax.NotConnectedException):
        return DeviceDisconnected(message)
    if isinstance(exc, ax.NotImplementedException | ax.ActionNotImplementedException):
        return Unsupported(message)
    if isinstance(exc, requests.ConnectionError):  # includes ConnectTimeout: server unreachable
        return DeviceDisconnected(f"{what}: Alpaca server unreachable ({detail})")
    if isinstance(exc, requests.Timeout | TimeoutError):
        return DeviceTimeout(message)
    if isinstance(exc, ax.AlpacaRequestException):
        return DeviceError(f"{what}: HTTP error from the Alpaca server ({detail})")
    if isinstance(exc, ax.ParkedException):
        return DeviceError(f"{what}: the mount is parked ({detail})")
    return DeviceError(message)


async def call(fn: Callable[[], T], what: str, time_limit: float = DEFAULT_TIMEOUT) -> T:
    """Run the blocking alpyca call ``fn`` off the event loop, bounded by ``time_limit`` seconds.

    Raises:
        DeviceTimeout: no answer within ``time_limit`` seconds.
        DeviceDisconnected: the server is unreachable or the device reports not connected.
        Unsupported: the driver does not implement the member.
        DeviceError: any other failure reported by the driver or the HTTP layer.
    """
    try:
        async with asyncio.timeout(time_limit):
            return await asyncio.to_thread(fn)
    except TimeoutError as exc:
        raise DeviceTimeout(f"{what}: no answer within {time_limit:g} s") from exc
    except DeviceError:
        raise
    except Exception as exc:
        raise convert(exc, what) from exc
