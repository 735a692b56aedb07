// Reference chat server for bench/run: Node + npm ws@8, written the way careful
// Node code is, speaking chat-server's wire protocol for the benchmark's room
// scenario (docs/protocol.md, docs/chat.md).
//
// Not a chat server: no store, no password check. POST /login accepts any
// username (the password is ignored) and answers 302 with
// `Set-Cookie: sessionid=<hex of the username>`; the WebSocket maps that
// cookie back to the user without any lookup. That is the cheapest stand-in
// for chat-server's session table, so the handshake figure is Node's and ws's.
//
// Per room (ws/chat/<pk>/): authentication 200, user_joined to the room (the
// joiner included), history [] to the joiner; chat -> the frame plus
// username/timestamp/is_mine/is_current to every member, encoded once per
// variant (at most four), each followed by group_complete, then complete to
// the sender; ping -> pong + complete; anything else -> an error frame +
// complete. A member leaving -> user_left to the others.
//
//   node server.js [--host 127.0.0.1] [--port 8000]   (port 0: any free port)
'use strict';

const http = require('http');
const { WebSocketServer } = require('ws');

let host = '127.0.0.1';
let port = 8000;
for (let i = 2; i < process.argv.length; i += 2) {
  const a = process.argv[i], v = process.argv[i + 1];
  if (a === '--host') host = v;
  else if (a === '--port') port = Number(v);
  else {
    console.error(`usage: node server.js [--host H] [--port P]`);
    process.exit(2);
  }
}

const frame = (o) => Buffer.from(JSON.stringify(o));
const AUTH_OK = frame({ action: 'authentication', payload: { status_code: 200, status_text: 'OK', data: { detail: 'OK' } } });
const AUTH_403 = frame({ action: 'authentication', payload: { status_code: 403, status_text: 'Forbidden', data: { detail: 'Authentication credentials were not provided.' } } });
const COMPLETE = frame({ action: 'complete', payload: null });
const GROUP_COMPLETE = frame({ action: 'group_complete', payload: null });
const PONG = frame({ action: 'pong', payload: null });
const HISTORY = frame({ action: 'history', payload: [] });
const HANDLER_ERROR = frame({ action: 'error', payload: { detail: 'Failed to process message' } });
const invalid = (type, loc, msg) => frame({ action: 'error', payload: [{ type, loc, msg }] });

const rooms = new Map(); // pk -> Set of ws

function cookieUser(req) {
  const m = /(?:^|;\s*)sessionid=([0-9a-f]{2,128})(?:;|$)/.exec(req.headers.cookie || '');
  return m ? Buffer.from(m[1], 'hex').toString() : null;
}

// One delivery: the variant and its group_complete in one write.
function deliver(ws, buf) {
  const s = ws._socket;
  s.cork();
  ws.send(buf);
  ws.send(GROUP_COMPLETE);
  s.uncork();
}

function groupSend(room, obj, sender, excludeSender) {
  const variants = [null, null, null, null]; // is_mine * 2 + is_current
  for (const peer of room) {
    if (excludeSender && peer === sender) continue;
    if (peer.readyState !== 1) continue;
    const k = (peer.user === sender.user ? 2 : 0) + (peer === sender ? 1 : 0);
    if (!variants[k]) {
      obj.is_mine = k >= 2;
      obj.is_current = (k & 1) === 1;
      variants[k] = frame(obj);
    }
    deliver(peer, variants[k]);
  }
}

function presence(ws, action) {
  return { action, payload: { username: ws.user, room_name: `room ${ws.room}`, timestamp: new Date().toISOString() } };
}

function onMessage(ws, data, isBinary) {
  let msg;
  if (isBinary) {
    ws.send(invalid('frame_type', [], 'Input should be a JSON text frame'));
  } else {
    try { msg = JSON.parse(data); } catch (e) { msg = undefined; }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
      ws.send(msg === undefined ? invalid('json_invalid', [], 'Invalid JSON') : invalid('dict_type', [], 'Input should be a valid dictionary'));
    } else if (msg.action === 'ping') {
      ws.send(PONG);
    } else if (msg.action === 'chat') {
      const p = msg.payload;
      const keys = Object.keys(msg);
      if (typeof p !== 'string') ws.send(invalid('string_type', ['payload'], 'Input should be a valid string'));
      else if (p.length === 0) ws.send(invalid('string_too_short', ['payload'], 'String should have at least 1 character'));
      else if ([...p].length > 4000) ws.send(invalid('string_too_long', ['payload'], 'String should have at most 4000 characters'));
      else if (keys.length !== 2) ws.send(invalid('extra_forbidden', [keys.find((k) => k !== 'action' && k !== 'payload')], 'Extra inputs are not permitted'));
      else {
        const room = rooms.get(ws.room);
        if (room) groupSend(room, { action: 'chat', payload: p, username: ws.user, timestamp: new Date().toISOString() }, ws, false);
        else ws.send(HANDLER_ERROR);
      }
    } else {
      ws.send(invalid('union_tag_invalid', ['action'], "Input tag does not match any of the expected tags: 'chat', 'ping'"));
    }
  }
  ws.send(COMPLETE);
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url.split('?')[0] === '/login') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { if (body.length < 65536) body += d; });
    req.on('end', () => {
      const user = new URLSearchParams(body).get('username');
      if (!user || user.length > 64) {
        res.writeHead(401, { 'Content-Type': 'text/plain' });
        res.end('username required\n');
        return;
      }
      res.writeHead(302, { Location: '/', 'Set-Cookie': `sessionid=${Buffer.from(user).toString('hex')}; HttpOnly; SameSite=Lax; Path=/` });
      res.end();
    });
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found\n');
});

const wss = new WebSocketServer({ noServer: true, maxPayload: 65536 });
server.on('upgrade', (req, socket, head) => {
  const m = /^\/ws\/chat\/(\d{1,18})\/$/.exec(req.url);
  if (!m) {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.user = cookieUser(req);
    ws.room = m[1];
    if (!ws.user) {
      ws.send(AUTH_403);
      ws.close(4403);
      return;
    }
    ws.send(AUTH_OK);
    let room = rooms.get(ws.room);
    if (!room) rooms.set(ws.room, (room = new Set()));
    room.add(ws);
    groupSend(room, presence(ws, 'user_joined'), ws, false);
    ws.send(HISTORY);
    ws.on('message', (data, isBinary) => onMessage(ws, data, isBinary));
    ws.on('error', () => {});
    ws.on('close', () => {
      room.delete(ws);
      if (room.size) groupSend(room, presence(ws, 'user_left'), ws, true);
      else rooms.delete(ws.room);
    });
  });
});

server.listen(port, host, () => {
  process.stdout.write(`listening on http://${host}:${server.address().port}/\n`);
});
const stop = () => { for (const ws of wss.clients) ws.close(1001); server.close(); process.exit(0); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
