"""One registry of typed methods: every transport dispatches through it, so no method is
written twice. Params and results are pydantic models (the OpenAPI document and the method
reference come from them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict

P = TypeVar("P", bound=BaseModel)


class NoParams(BaseModel):
    """Methods that take nothing accept ``{}``, ``[]`` or no params at all."""

    model_config = ConfigDict(extra="forbid")


class Complete(BaseModel):
    """pyastroimageview's answer to a command: ``{"complete": true}``."""

    complete: bool = True


Handler = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    name: str
    params: type[BaseModel]
    handler: Handler
    summary: str
    result: type[BaseModel] | None = None  # what ``result`` holds (the OpenAPI document's)
    moves_hardware: bool = False  # refused while the night owns the rig and is not paused
    device: str | None = None  # which device the night would have to lend ("camera" …)


class Registry:
    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def method(
        self, name: str, params: type[BaseModel] = NoParams, *,
        moves: str | None = None, result: type[BaseModel] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register ``async def handler(hub, params)``; ``moves`` names the device it moves,
        ``result`` the model of its answer (a handler may return that model or its dump)."""

        def register(fn: Handler) -> Handler:
            if name in self._methods:
                raise ValueError(f"method {name!r} registered twice")
            doc = (fn.__doc__ or "").strip().splitlines()
            self._methods[name] = Method(name, params, fn, doc[0] if doc else "",
                                         result or _returned_model(fn),
                                         moves_hardware=moves is not None, device=moves)
            return fn

        return register

    def namespace(
        self, prefix: str, device: str
    ) -> Callable[..., Callable[[Handler], Handler]]:
        """``reg(name, Params, moves=True)`` registering ``prefix + name`` (``camera.`` …)."""

        def reg(
            name: str, params: type[BaseModel] = NoParams, *, moves: bool = False,
            result: type[BaseModel] | None = None,
        ) -> Callable[[Handler], Handler]:
            return self.method(prefix + name, params, moves=device if moves else None,
                               result=result)

        return reg

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def names(self) -> list[str]:
        return sorted(self._methods)

    def all(self) -> list[Method]:
        return [self._methods[n] for n in self.names()]


def _returned_model(fn: Handler) -> type[BaseModel] | None:
    """The model a handler's return annotation names (``-> Complete``), if it names one."""
    try:
        returned = get_type_hints(fn).get("return")
    except (NameError, TypeError):
        return None
    return returned if isinstance(returned, type) and issubclass(returned, BaseModel) else None


REGISTRY = Registry()
