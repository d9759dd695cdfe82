// One client for both sides of the comparison (bench/bench_messaging.py): PAIRS conversations in
// parallel, MESSAGES sequential messages each (a sends, b must receive before a sends the next);
// latency = a's emit → b's new_message, in this one process (one clock).
// MODE=peer: the Node/Socket.io peer (../shared/peers/socketio/server.js), a on URL_A, b on URL_B.
// MODE=sio:  this project's Socket.IO (/messages), TRANSPORTS=websocket|polling, tokens from PAIRS_FILE.
// MODE=ws:   this project's /ws/messages/ JSON frames, tokens from PAIRS_FILE.
// Prints one JSON line: {mode, pairs, messages, delivered, lost, wall_s, msgs_per_s, median_ms, p99_ms}
// (and every latency, `latencies`, with LATENCIES=1).
const { io } = require('socket.io-client');
const WebSocket = require('ws');
const crypto = require('crypto');
const fs = require('fs');

const mode = process.env.MODE;
const N = Number(process.env.PAIRS || 50);
const M = Number(process.env.MESSAGES || 40);
const [URL_A, URL_B] = [process.env.URL_A, process.env.URL_B || process.env.URL_A];
const transports = (process.env.TRANSPORTS || 'websocket').split(',');
const pairsIn = process.env.PAIRS_FILE ? JSON.parse(fs.readFileSync(process.env.PAIRS_FILE)) : [];
const quantile = (xs, q) => { const s = [...xs].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
const ready = (socket) => new Promise((res, rej) => { socket.on('connect', res); socket.on('connect_error', rej); });

async function sioPair(i) {
  const peer = mode === 'peer';
  const conversationId = peer ? crypto.randomUUID() : pairsIn[i].conversationId;
  const open = (url, who) => io(`${url}/messages`, {
    transports, forceNew: true, reconnection: false,
    auth: peer ? { userId: `${who}${i}` } : { token: pairsIn[i][who === 'a' ? 'tokenA' : 'tokenB'] },
  });
  const a = open(URL_A, 'a');
  const b = open(URL_B, 'b');
  await Promise.all([ready(a), ready(b)]);
  if (peer) await Promise.all([a, b].map((s) => new Promise((res) => s.emit('join_conversation', { conversationId }, res))));
  return {
    send: (content) => a.emit('send_message', { conversationId, content }),
    onReceive: (cb) => b.on('new_message', (m) => cb(m.content)),
    close: () => { a.close(); b.close(); },
  };
}

function wsOpen(url) {
  return new Promise((res, rej) => { const w = new WebSocket(url); w.on('open', () => res(w)); w.on('error', rej); });
}

async function wsPair(i) {
  const p = pairsIn[i];
  const a = await wsOpen(`${URL_A.replace('http', 'ws')}/ws/messages/?token=${p.tokenA}`);
  const b = await wsOpen(`${URL_B.replace('http', 'ws')}/ws/messages/?token=${p.tokenB}`);
  return {
    send: (content) => a.send(JSON.stringify({ event: 'send_message', data: { conversationId: p.conversationId, content } })),
    onReceive: (cb) => b.on('message', (raw) => { const f = JSON.parse(raw); if (f.event === 'new_message') cb(f.data.content); }),
    close: () => { a.close(); b.close(); },
  };
}

async function main() {
  const pairs = [];
  for (let i = 0; i < N; i++) pairs.push(mode === 'ws' ? await wsPair(i) : await sioPair(i));
  const latencies = [];
  let lost = 0;
  const started = process.hrtime.bigint();
  await Promise.all(pairs.map(async (pair, i) => {
    let waiting = null;
    pair.onReceive((content) => { if (waiting && content === waiting.content) waiting.resolve(true); });
    for (let k = 0; k < M; k++) {
      const content = `p${i}-m${k}`;
      const t0 = process.hrtime.bigint();
      const got = await new Promise((resolve) => {
        waiting = { content, resolve };
        setTimeout(() => resolve(false), 5000);
        pair.send(content);
      });
      if (got) latencies.push(Number(process.hrtime.bigint() - t0) / 1e6); else lost++;
    }
  }));
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  pairs.forEach((p) => p.close());
  process.stdout.write(JSON.stringify({
    mode: mode + (mode === 'sio' ? `:${transports.join('+')}` : ''), pairs: N, messages: N * M,
    delivered: latencies.length, lost, wall_s: wall, msgs_per_s: latencies.length / wall,
    median_ms: quantile(latencies, 0.5), p99_ms: quantile(latencies, 0.99),
    ...(process.env.LATENCIES ? { latencies } : {}),
  }) + '\n', () => process.exit(0));
}
main().catch((e) => { console.error(e); process.exit(1); });
