"""The web's render process: ``python -m runner.control.render_worker``.

Stretching and JPEG-encoding frames and stacks for the web is the heaviest work the control
plane asks for (~100 ms of CPU a second while a night is watched). Done in the night's
process it competes for the GIL with the event loop that answers ``status``; here it runs in
its own process, at a lower CPU priority, so a watched night answers as fast as an unwatched
one. The parent is :class:`runner.control.render_process.RenderProcess`.

The protocol, on stdin/stdout: each message is an 8-byte big-endian length and a pickle
(the peer is our own parent, over private pipes). A request is ``(function name, args)`` of a
function in :data:`FUNCTIONS`; the reply ``("ok", value)`` or ``("error", message)``. End of
input (the parent closed the pipe, or died) ends the process.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

HEADER = struct.Struct(">Q")
NICE = 10  # below the night, its clients and the browser on a small machine


def _picture(path: str, bayer: str | None) -> Any:
    """One Picture per file: the preview and the histogram of a frame read it once."""
    from runner.control.web_state import Picture

    key = (path, bayer)
    if _last[0] != key:
        _last[:] = [key, Picture(path=Path(path), bayer=bayer)]
    return _last[1]


_last: list[Any] = [None, None]


def picture_jpeg(path: str, bayer: str | None) -> bytes:
    from runner.control.web_render import picture_jpeg as render

    return render(_picture(path, bayer))


def picture_histogram(path: str, bayer: str | None) -> dict[str, Any]:
    from runner.control.web_render import picture_histogram as render

    return render(_picture(path, bayer))


def stack_preview(*args: Any, **kwargs: Any) -> bytes:
    from runner.stacking.live.outputs import preview_jpeg

    return preview_jpeg(*args, **kwargs)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "picture_jpeg": picture_jpeg,
    "picture_histogram": picture_histogram,
    "stack_preview": stack_preview,
}


def read_message(stream: BinaryIO) -> Any:
    """The next message, or raise EOFError at the end of the stream."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        raise EOFError
    (size,) = HEADER.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError
    return pickle.loads(body)


def write_message(stream: BinaryIO, value: Any) -> None:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    while True:
        try:
            name, args = read_message(requests)
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", FUNCTIONS[name](*args))
        except Exception as exc:  # an unreadable frame is one failed picture, not the end
            reply = ("error", f"{type(exc).__name__}: {exc}")
        write_message(replies, reply)


def main() -> None:
    with contextlib.suppress(OSError):
        os.nice(NICE)
    # replies go to the real stdout only; anything a library prints goes to stderr
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
