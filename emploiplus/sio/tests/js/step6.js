// The original guide's "Step 6" frontend code, with the real socket.io-client v4, against a
// real server: alice opens the three namespaces exactly as the guide does (default transports:
// polling, then the websocket upgrade); bob, her contact, opens /messages. Prints one JSON line
// per observation and a final {"done": true, ...} line; exits non-zero on any timeout.
// Env: URL, TOKEN_A, TOKEN_B, CONV (their conversation), WEBHOOK_BODY, WEBHOOK_SIG, TRANSPORTS.
const { io } = require('socket.io-client');

const SOCKET_URL = process.env.URL;
const transports = process.env.TRANSPORTS ? process.env.TRANSPORTS.split(',') : undefined;
const out = (o) => console.log(JSON.stringify(o));
const fail = (why) => { out({ failed: why }); process.exit(1); };
setTimeout(() => fail('scenario timeout'), 60000);

function once(socket, event, pred = () => true, ms = 15000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    const handler = (data) => {
      if (!pred(data)) return;
      clearTimeout(timer); socket.off(event, handler); resolve(data);
    };
    socket.on(event, handler);
  });
}
const emit = (socket, event, data) => new Promise((resolve) => socket.emit(event, data, resolve));

function step6(token) {
  // --- as in the guide ---
  const messagesSocket = io(`${SOCKET_URL}/messages`, {
    auth: { token }, reconnection: true, reconnectionDelay: 1000, reconnectionAttempts: 5, transports,
  });
  const notificationsSocket = io(`${SOCKET_URL}/notifications`, { auth: { token }, transports });
  const presenceSocket = io(`${SOCKET_URL}/presence`, { auth: { token }, transports });
  return { messagesSocket, notificationsSocket, presenceSocket };
}

async function main() {
  const alice = step6(process.env.TOKEN_A);
  const upgraded = new Promise((resolve) => alice.messagesSocket.io.on('open', () => {
    const engine = alice.messagesSocket.io.engine;
    if (engine.transport.name === 'websocket') resolve(engine.transport.name);
    engine.on('upgrade', (t) => resolve(t.name));
  }));
  const presenceState = once(alice.presenceSocket, 'presence_state');
  await Promise.all(Object.values(alice).map((s) => once(s, 'connect')));
  out({ connected: 'alice', sameEngine: new Set(Object.values(alice).map((s) => s.io)).size === 1 });
  out({ initialPresence: await presenceState });

  // bob, her contact, comes online: alice learns it without subscribing.
  const bobOnline = once(alice.presenceSocket, 'user_online');
  const bob = io(`${SOCKET_URL}/messages`, { auth: { token: process.env.TOKEN_B }, transports });
  await once(bob, 'connect');
  out({ userOnline: await bobOnline });
  out({ transport: await Promise.race([upgraded, new Promise((r) => setTimeout(() => r('polling'), 10000))]) });

  const conversationId = process.env.CONV;
  out({ joinAck: await emit(alice.messagesSocket, 'join_conversation', { conversationId }) });
  out({ bobJoinAck: await emit(bob, 'join_conversation', { conversationId }) });

  const typing = once(bob, 'user_typing');
  alice.messagesSocket.emit('typing', { conversationId, isTyping: true });
  out({ userTyping: await typing });

  const received = once(bob, 'new_message');
  const sentFrame = once(alice.messagesSocket, 'message_sent');
  const ack = await emit(alice.messagesSocket, 'send_message', { conversationId, content: 'Bonjour Bob', clientMessageId: 'c1' });
  out({ sendAck: ack });
  out({ newMessage: await received });
  out({ messageSent: await sentFrame });

  const read = once(alice.messagesSocket, 'messages_read');
  out({ markAck: await emit(bob, 'mark_as_read', { conversationId }) });
  out({ messagesRead: await read });

  const deleted = once(bob, 'message_deleted');
  out({ deleteAck: await emit(alice.messagesSocket, 'delete_message', { messageId: ack.id }) });
  out({ messageDeleted: await deleted });

  // An event bob may not send: the ack carries the error; without an ack, an `error` event.
  out({ forbiddenAck: await emit(bob, 'delete_message', { messageId: ack.id }) });
  const errorEvent = once(bob, 'error');
  bob.emit('send_message', { conversationId, content: '' });
  out({ errorEvent: await errorEvent });

  // A job posted through a signed webhook: alice's notifications socket gets it.
  const notification = once(alice.notificationsSocket, 'notification', (n) => n.type === 'job_match', 30000);
  const hook = await fetch(`${SOCKET_URL}/api/webhooks/jobs/notify`, {
    method: 'POST', body: process.env.WEBHOOK_BODY,
    headers: { 'content-type': 'application/json', 'x-webhook-signature': process.env.WEBHOOK_SIG },
  });
  out({ webhookStatus: hook.status });
  out({ notification: await notification });

  // bob's last tab closes: alice sees him go.
  const bobOffline = once(alice.presenceSocket, 'user_offline');
  bob.close();
  out({ userOffline: await bobOffline });

  // A bad token: connect_error with the reason, never a connected socket.
  const intruder = io(`${SOCKET_URL}/messages`, { auth: { token: 'not-a-token' }, transports, forceNew: true });
  const error = await once(intruder, 'connect_error');
  out({ connectError: { message: error.message, data: error.data }, intruderConnected: intruder.connected });
  intruder.close();

  Object.values(alice).forEach((s) => s.close());
  process.stdout.write(JSON.stringify({ done: true }) + '\n', () => process.exit(0));
}

main().catch((e) => fail(String(e && e.stack || e)));
