"""Socket.IO on the wire (Engine.IO v4 + Socket.IO v5): the original frontend's
`socket.io-client` v4 connects to `/socket.io/` unchanged, on any number of processes,
without sticky sessions.

The namespaces `/messages`, `/notifications`, `/presence` are the very classes `/ws/…/` serves
(`emploiplus.realtime.Namespace`); this package only speaks the protocol and hosts them:

- `protocol` — packets (python-engineio's and python-socketio's encoders), the protocol's
  HTTP errors, the handshake;
- `session` — what one Engine.IO session does with Socket.IO packets, whatever carries them:
  namespace CONNECT (auth from the packet's `auth.token`, else the handshake's `?token=` or
  `Authorization`), events with or without an ack, DISCONNECT, token expiry, event budget;
- `polling` — HTTP long-polling, served by any process: the session's state (its namespaces'
  state between events) is a Redis hash, the packets waiting for the client are channel-layer
  plain channels (`sio.<sid>.<namespace>`), which the namespaces' groups deliver to — no
  process memory involved, so every GET and POST may land on another process;
- `websocket` — the WebSocket transport, new (`transport=websocket`) or upgraded from
  polling (`2probe`/`3probe`/`5`): then the session moves into the process that holds the
  socket (process-local channels, joined groups moved over, what waited on the plain channels
  delivered first, duplicates dropped by frame id).

docs/socketio.md describes the protocol details and the choices made where it is silent.
"""
