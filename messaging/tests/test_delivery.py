"""`messaging.delivery.group_send_many` on the real Redis channel layer: what every
member of every group receives, in order, read by the layer's own `receive`."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers, get_channel_layer

from emploiplus.events import event_message
from messaging.delivery import _fast_path, group_send_many


async def _drain(layer, channel: str, n: int) -> list[dict]:
    return [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(n)]


async def test_it_delivers_to_every_group_member_in_order():
    layer = get_channel_layer()
    assert _fast_path(layer)  # channels_redis, one host: the two-round-trip path is what runs
    # Two "processes": each layer has its own process-specific channel key.
    other = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    try:
        a1, a2, b1 = await layer.new_channel(), await layer.new_channel(), await other.new_channel()
        await layer.group_add("user.a", a1)
        await layer.group_add("user.a", a2)
        await other.group_add("user.a", b1)
        await layer.group_add("user.b", a2)
        await other.group_add("user.b", b1)

        await group_send_many(
            layer,
            [
                ("user.a", event_message("new_message", {"n": 1})),
                ("user.b", event_message("new_message", {"n": 1})),
                ("user.a", event_message("message_sent", {"n": 1})),
                ("user.nobody", event_message("new_message", {"n": 1})),
            ],
        )
        got_a1 = await _drain(layer, a1, 2)
        got_a2 = await _drain(layer, a2, 3)
        got_b1 = await _drain(other, b1, 3)
        assert [m["event"] for m in got_a1] == ["new_message", "message_sent"]
        assert [m["event"] for m in got_a2] == ["new_message", "new_message", "message_sent"]
        assert [m["event"] for m in got_b1] == ["new_message", "new_message", "message_sent"]
        assert all(m["type"] == "emploiplus.event" and m["data"] == {"n": 1} for m in got_a1 + got_a2 + got_b1)
        # Nothing more for anyone.
        for lay, channel in ((layer, a1), (layer, a2), (other, b1)):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(lay.receive(channel), 0.3)
        await group_send_many(layer, [])  # no-op
    finally:
        await other.close_pools()
