"""The stream: the hub that encodes each tick once per view, the in-memory history ring,
per-client sinks and the fast-path WebSocket protocol for uvicorn."""
