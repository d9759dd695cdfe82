// PAIRS conversations (a ↔ b), MESSAGES messages each (a and b take turns), over socket.io-client
// with the given transports; or, for side "ws", over /ws/messages/ with the `ws` package.
// Prints {"sent": {conv: [ids in send order]}, "received": {conv: {side: [ids in arrival order]}}}.
// Env: URL, PAIRS_FILE (JSON: [{a, b, tokenA, tokenB, conversationId, sideA, sideB}]), MESSAGES,
// TRANSPORTS (for socket.io sides; default: the client's default).
const { io } = require('socket.io-client');
const WebSocket = require('ws');
const fs = require('fs');

const URL = process.env.URL;
const pairs = JSON.parse(fs.readFileSync(process.env.PAIRS_FILE));
const M = Number(process.env.MESSAGES || 100);
const transports = process.env.TRANSPORTS ? process.env.TRANSPORTS.split(',') : undefined;
setTimeout(() => { console.log(JSON.stringify({ failed: 'timeout' })); process.exit(1); }, Number(process.env.DEADLINE_MS || 170000));

function sioClient(token, onMessage) {
  const socket = io(`${URL}/messages`, { auth: { token }, transports, forceNew: true, reconnection: false });
  socket.on('new_message', onMessage);
  return {
    ready: new Promise((resolve, reject) => { socket.on('connect', resolve); socket.on('connect_error', reject); }),
    send: (data) => new Promise((resolve) => socket.emit('send_message', data, resolve)),
    close: () => socket.close(),
  };
}

function wsClient(token, onMessage) {
  const socket = new WebSocket(`${URL.replace('http', 'ws')}/ws/messages/?token=${token}`);
  let ref = 0;
  const acks = new Map();
  socket.on('message', (raw) => {
    const frame = JSON.parse(raw);
    if (frame.event === 'new_message') onMessage(frame.data);
    if ((frame.event === 'ack' || frame.event === 'error') && acks.has(frame.ref)) {
      acks.get(frame.ref)(frame.event === 'ack' ? frame.data : { error: frame.error });
      acks.delete(frame.ref);
    }
  });
  return {
    ready: new Promise((resolve, reject) => { socket.on('open', resolve); socket.on('error', reject); }),
    send: (data) => new Promise((resolve) => {
      const r = `r${ref++}`; acks.set(r, resolve);
      socket.send(JSON.stringify({ event: 'send_message', data, ref: r }));
    }),
    close: () => socket.close(),
  };
}

async function main() {
  const sent = {};
  const received = {};
  const clients = [];
  for (const p of pairs) {
    received[p.conversationId] = { a: [], b: [] };
    sent[p.conversationId] = [];
    const make = (side, token) => (p[`side${side.toUpperCase()}`] === 'ws' ? wsClient : sioClient)(
      token, (m) => { if (m.conversationId === p.conversationId) received[p.conversationId][side].push(m.id); });
    const a = make('a', p.tokenA);
    const b = make('b', p.tokenB);
    clients.push([p, a, b]);
  }
  await Promise.all(clients.flatMap(([, a, b]) => [a.ready, b.ready]));
  const errors = [];
  await Promise.all(clients.map(async ([p, a, b]) => {
    for (let k = 0; k < M; k++) {
      const ack = await (k % 2 ? b : a).send({ conversationId: p.conversationId, content: `m${k}`, clientMessageId: `${p.conversationId}-${k}` });
      if (!ack || !ack.id) errors.push(ack); else sent[p.conversationId].push(ack.id);
    }
  }));
  // Everything sent is acknowledged (stored): wait for the last deliveries.
  const complete = () => pairs.every((p) => ['a', 'b'].every((s) => received[p.conversationId][s].length >= sent[p.conversationId].length));
  const until = Date.now() + 30000;
  while (!complete() && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 500)); // a late duplicate would show now
  clients.forEach(([, a, b]) => { a.close(); b.close(); });
  process.stdout.write(JSON.stringify({ sent, received, errors }) + '\n', () => process.exit(0));
}
main().catch((e) => { console.log(JSON.stringify({ failed: String(e && e.stack || e) })); process.exit(1); });
