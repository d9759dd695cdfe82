"""The channel-layer configuration messaging needs, applied over settings.CHANNEL_LAYERS
until settings.py carries it (then these helpers change nothing):

- `socket_timeout` above channels_redis' 5 s BZPOPMIN: redis-py 8 reads with a 5 s
  default timeout, so an idle consumer's receive() otherwise dies with TimeoutError;
- `capacity` sized for a process: channels_redis queues every message for a process's
  connections in ONE Redis key, and drops (silently, in group_send) beyond `capacity`.
  1,000 is reached by a burst to a few hundred sockets of one process;
- `max_connections` per process: redis-py 8 pools raise MaxConnectionsError past 100
  connections, which a burst of a few hundred joins/sends reaches.
"""

from __future__ import annotations

import copy
from typing import Any

SOCKET_TIMEOUT = 30
PROCESS_CAPACITY = 100_000
MAX_CONNECTIONS = 1000


def with_fixes(layers: dict[str, Any]) -> dict[str, Any]:
    layers = copy.deepcopy(layers)
    config = layers["default"]["CONFIG"]
    config["hosts"] = [
        {"address": h, "socket_timeout": SOCKET_TIMEOUT, "max_connections": MAX_CONNECTIONS}
        if isinstance(h, str)
        else h
        for h in config["hosts"]
    ]
    config["capacity"] = max(config.get("capacity", 100), PROCESS_CAPACITY)
    return layers
