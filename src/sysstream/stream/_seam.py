"""Everything sysstream's protocol relies on inside uvicorn and websockets, named once.

uvicorn's ``WebSocketsSansIOProtocol`` has no documented extension API; the attributes and
methods below are the part of it :class:`~sysstream.stream._protocol.WebSocketProtocol`
reads, writes, overrides or calls. ``tests/test_seam.py`` checks each against the installed
releases and fails naming the one that moved; ``scripts/conformance.py`` runs uvicorn's own
WebSocket tests against the class.
"""

from __future__ import annotations

__all__ = [
    "UVICORN_ATTRIBUTES",
    "UVICORN_METHODS",
    "UVICORN_QUEUE_METHODS",
    "UVICORN_WRITABLE_METHODS",
    "WEBSOCKETS_ATTRIBUTES",
]

# Instance attributes of uvicorn's protocol: name -> the type names its value may have
# (checked on a fresh instance, so "NoneType" where uvicorn starts with None; empty: any).
UVICORN_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "app": (),  # the loaded app, wrapped as the config says
    "loop": (),
    "logger": ("Logger",),
    "transport": ("NoneType",),  # set by connection_made
    "conn": ("ServerProtocol",),
    "queue": ("Queue",),  # replaced by Inbox (UVICORN_QUEUE_METHODS)
    "writable": ("Event",),  # replaced by Flag (UVICORN_WRITABLE_METHODS)
    "handshake_complete": ("bool",),
    "close_sent": ("bool",),
    "disconnected": ("bool",),
    "close_timer": ("NoneType",),
    "close_timeout": ("float",),
    "initial_response": ("NoneType",),
    "read_paused": ("bool",),
    "frames": ("list",),
    "curr_msg_data_type": ("str",),
    "ping_interval": ("float", "NoneType"),
    "ping_timeout": ("float", "NoneType"),
    "pong_timer": ("NoneType",),
    "pending_ping_payload": ("NoneType",),
    "ping_sent_at": ("float",),
    "last_ping_rtt": ("float",),
}

# Methods overridden or called: name -> parameter names after self. "scope", "request" and
# "response" are set by handle_connect and read or dropped by the class as well.
UVICORN_METHODS: dict[str, tuple[str, ...]] = {
    "data_received": ("data",),
    "handle_close": ("event",),
    "handle_connect": ("event",),
    "send_receive_event_to_app": (),
    "start_keepalive": (),
    "stop_keepalive": (),
    "keepalive_timeout": (),
    "pause_writing": (),
    "resume_writing": (),
    "connection_lost": ("exc",),
    "shutdown": (),
    "send": ("message",),
    "receive": (),
    "run_asgi": (),
    "send_500_response": (),
}

# What uvicorn calls on self.queue and self.writable: the stand-ins implement exactly these.
UVICORN_QUEUE_METHODS = frozenset({"put_nowait", "get", "empty"})
UVICORN_WRITABLE_METHODS = frozenset({"set", "clear", "wait"})

# websockets' ServerProtocol: the unparsed bytes (the pong fast path needs them empty).
WEBSOCKETS_ATTRIBUTES: dict[str, tuple[str, ...]] = {"reader.buffer": ("bytearray",)}
