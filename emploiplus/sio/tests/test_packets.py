"""The EVENT and ACK packets we write ourselves (emploiplus.sio.protocol._data_packet) are
byte for byte what python-socketio's Packet encodes, and what it decodes back."""

from __future__ import annotations

import pytest
from socketio import packet as sio

from emploiplus.sio import protocol

DATA = [
    {},
    None,
    {"content": "Entretien à 10 h — d'accord ? «oui»", "n": 3, "ok": True, "x": 1.5, "nested": {"l": [1, None]}},
    {"emoji": "🎉", "sep": "\u2028\u2029", "quote": '"\\', "ctl": "\x00\x1f"},
    [1, "deux", {"trois": 3}],
    "texte",
    0,
]


@pytest.mark.parametrize("namespace", ["/", "/messages", "/notifications"])
@pytest.mark.parametrize("data", DATA)
def test_event_and_ack_packets_are_the_librarys(namespace, data):
    library_ns = None if namespace == "/" else namespace
    event = protocol.event_packet(namespace, "new_message", data)
    assert event == "4" + sio.Packet(sio.EVENT, data=["new_message", data], namespace=library_ns).encode()
    for ack_id in (0, 7, 123456):
        ack = protocol.ack_packet(namespace, ack_id, data)
        assert ack == "4" + sio.Packet(sio.ACK, data=[data], namespace=library_ns, id=ack_id).encode()
        decoded = sio.Packet(encoded_packet=ack[1:])
        assert (decoded.packet_type, decoded.namespace, decoded.id) == (sio.ACK, library_ns, ack_id)
        assert decoded.data == [data]


def test_a_payload_that_is_not_json_is_refused_as_the_library_refuses_it():
    class NotJson:
        pass

    with pytest.raises(TypeError):
        sio.Packet(sio.EVENT, data=["e", {"x": NotJson()}], binary=False).encode()
    with pytest.raises(TypeError):
        protocol.event_packet("/messages", "e", {"x": NotJson()})
