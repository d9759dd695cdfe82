"""Send several channel-layer group messages in two Redis round trips.

`channels_redis`' `group_send` costs four sequential round trips per group (expire old
members, read members, expire old messages, push); a new message goes to three groups
(every participant's `user.<id>`, plus `message_sent` to the sender), a group
conversation to up to 51. `group_send_many` does the same work for all of them at once:

1. one pipeline: expire and read the members of every group;
2. one Lua script: per destination channel key (one per server process for its
   sockets), expire old messages and push the message if under capacity — the same
   checks and the same serialized format as `group_send`, so any process's layer reads
   them as usual.

Messages to the same channel key keep their order (increasing scores: the receiving
process pops the lowest first). Written against channels_redis 4.3 (pinned in
requirements.txt); any other layer, or a sharded one (several hosts), falls back to
`group_send` per group, concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

# KEYS = channel keys (repeats allowed, in send order). ARGV = messages (one per key),
# capacities (one per key), then the score of the first message, then the expiry.
_PUSH = """
local n = #KEYS
local now = tonumber(ARGV[2 * n + 1])
local expiry = tonumber(ARGV[2 * n + 2])
local over = 0
for i = 1, n do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, math.floor(now) - expiry)
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[n + i]) then
        redis.call('ZADD', KEYS[i], now + i * 0.000001, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over = over + 1
    end
end
return over
"""


def _fast_path(layer: Any) -> bool:
    from channels_redis.core import RedisChannelLayer

    return (
        type(layer) is RedisChannelLayer
        and layer.ring_size == 1
        and hasattr(layer, "_map_channel_keys_to_connection")
        and hasattr(layer, "_group_key")
    )


async def group_send_many(layer: Any, sends: list[tuple[str, dict[str, Any]]]) -> None:
    """`layer.group_send(group, message)` for every (group, message), in order per socket."""
    if not sends:
        return
    if not _fast_path(layer):
        await asyncio.gather(*(layer.group_send(group, message) for group, message in sends))
        return
    for group, _message in sends:
        assert layer.require_valid_group_name(group), "Group name not valid"
    connection = layer.connection(0)
    group_keys = list(dict.fromkeys(layer._group_key(group) for group, _ in sends))
    async with connection.pipeline(transaction=False) as pipe:
        for group_key in group_keys:
            pipe.zremrangebyscore(group_key, min=0, max=int(time.time()) - layer.group_expiry)
            pipe.zrange(group_key, 0, -1)
        replies = await pipe.execute()
    members = {
        group_key: [name.decode("utf8") for name in replies[2 * i + 1]] for i, group_key in enumerate(group_keys)
    }

    keys: list[str] = []
    messages: list[bytes] = []
    capacities: list[int] = []
    for group, message in sends:
        _by_connection, key_to_message, key_to_capacity = layer._map_channel_keys_to_connection(
            members[layer._group_key(group)], message
        )
        for channel_key, serialized in key_to_message.items():
            keys.append(channel_key)
            messages.append(serialized)
            capacities.append(key_to_capacity[channel_key])
    if not keys:
        return
    over = await connection.eval(_PUSH, len(keys), *keys, *messages, *capacities, time.time(), int(layer.expiry))
    if over:
        log.info("%s of %s channel messages over capacity", over, len(keys))
