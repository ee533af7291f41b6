"""Fleet mode: agents publish ticks to Redis; hubs serve every host with the same protocol."""

from __future__ import annotations

from ._agent import AgentSettings, published_groups, run_agent
from ._hub import Fleet, RemoteHost

__all__ = ["AgentSettings", "Fleet", "RemoteHost", "published_groups", "run_agent"]
