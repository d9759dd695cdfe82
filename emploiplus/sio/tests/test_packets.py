"""The EVENT and ACK packets we write ourselves (emploiplus.sio.protocol._data_packet) are
byte for byte what python-socketio's Packet encodes, and what it decodes back."""

from __future__ import annotations

import pytest
from engineio import packet as eio
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


INCOMING = [
    '42/messages,["send_message",{"conversationId":"c","content":"Bonjour à tous","n":12}]',
    '42/messages,17["send_message",{"content":"avec un ack"}]',
    '42["root_event",null,[1,2.5,"x"],true]',
    "40/messages,",
    '40/messages,{"token":"abc"}',
    "40",
    "41/messages,",
    "43/messages,5[{}]",
    "4",
    '4{"not":"socket.io"}',
    "4texte",
    "2",
    "3",
    "2probe",
    "1",
    "6",
]


@pytest.mark.parametrize("text", INCOMING)
def test_incoming_packets_decode_as_the_librarys(text):
    """decode_engine's shortcut for Socket.IO MESSAGEs and decode_socketio's decoder made once
    read every packet exactly as python-engineio and python-socketio do."""
    ours, theirs = protocol.decode_engine(text), eio.Packet(encoded_packet=text)
    assert (ours.packet_type, ours.data, ours.binary) == (theirs.packet_type, theirs.data, theirs.binary)
    if ours.packet_type == eio.MESSAGE and isinstance(ours.data, str) and ours.data[:1].isdigit():
        mine, library = protocol.decode_socketio(ours.data), sio.Packet(encoded_packet=theirs.data)
        assert (mine.packet_type, mine.namespace, mine.id, mine.data) == (
            library.packet_type,
            library.namespace,
            library.id,
            library.data,
        )


def test_an_integer_of_more_than_100_digits_is_refused_as_the_library_refuses_it():
    text = '2/messages,["send_message",{"n":' + "9" * 101 + "}]"
    with pytest.raises(ValueError, match="too large"):
        sio.Packet(encoded_packet=text)
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_socketio(text)
    assert protocol.decode_socketio(text.replace("9" * 101, "9" * 100)).data[1]["n"] == int("9" * 100)
