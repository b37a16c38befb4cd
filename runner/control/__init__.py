"""The control plane: one registry of typed JSON-RPC methods, served over HTTP ``POST /rpc``,
WebSocket ``/ws`` and pyastroimageview's TCP line protocol (seed 000), with one event stream.

Layers (imports run downwards): ``transports`` (http_app, tcp) → ``protocol`` (JSON-RPC 2.0) →
``registry`` (typed methods) → ``hub`` (what the methods act on: devices, the night, events).
"""
