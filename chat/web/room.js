// chanc chat — the room page.
//
// Speaks the chat protocol (README, "Wire protocol" and "The chat
// application") over ws(s)://<host>/ws/chat/<room_id>/. Every piece of text
// that comes from a user or the server is inserted with textContent /
// createTextNode, never as HTML.
//
// Log lines (selectors the end-to-end test relies on):
//   .line.system      "Connected", "<user> joined", "<user> left", …
//   .line.presence    a big room's joins and leaves of one interval (the
//                     `presence` frame): "12 joined, 3 left · 1,204 online",
//                     the names (at most 50 each) in its title
//   .line.separator   "— history —", "— now —"
//   .line.chat        one message: .time, .user, .text (+ .mine when own,
//                     + .history when it came with the history)
//   .line.error       an error frame (validation msgs or detail)
//   .line.announcement a staff announcement (not part of the history): a
//                     banner line with .label, .time, .user, .text
//
// After a reconnect the server sends the history again: only the messages
// the page has not shown yet are added. "Log out" closes the socket before
// the form is posted.
//
// Reconnecting: jittered exponential back-off, so that the members of a
// room do not all come back in the same instant after a server restart.
// Attempt n (0 after each open) waits base·(0.5 + random/2) with base =
// min(8 s, 0.5 s·2^n): 0.25–0.5 s, 0.5–1 s, 1–2 s, 2–4 s, then 4–8 s.
'use strict';

(() => {
  const body = document.body;
  const roomId = body.dataset.roomId;
  const username = body.dataset.username || '';
  const log = document.getElementById('chat-log');
  const form = document.getElementById('chat-form');
  const input = document.getElementById('chat-message-input');
  const status = document.getElementById('chat-status');
  const logoutForm = document.getElementById('logout-form');

  const RECONNECT_FIRST_MS = 500;
  const RECONNECT_MAX_MS = 8000;
  const AUTH_CLOSE_CODES = new Set([4401, 4403, 4404]);

  let socket = null;
  let authFailed = false;
  let reconnectTimer = null;
  let leaving = false;
  let announcedReconnect = false; // one "reconnecting" line per outage
  let attempts = 0; // reconnects since the last open
  let historyShown = false; // the first history came: later ones add what was missed
  const shown = new Set(); // chatKey of every chat line on the page

  // One message, as live frames and history entries both describe it.
  function chatKey(user, text, timestamp) {
    return JSON.stringify([String(timestamp ?? ''), String(user ?? ''), String(text ?? '')]);
  }

  function setStatus(text, state) {
    status.textContent = text;
    status.dataset.state = state;
  }

  function scrollToBottom() {
    log.scrollTop = log.scrollHeight;
  }

  function pad2(n) {
    return String(n).padStart(2, '0');
  }

  // HH:MM:SS in local time; '' when the timestamp does not parse.
  function formatTime(iso) {
    if (typeof iso !== 'string') return '';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }

  function addLine(kind, text) {
    const line = document.createElement('div');
    line.className = `line ${kind}`;
    line.dataset.kind = kind;
    line.textContent = text;
    log.appendChild(line);
    scrollToBottom();
    return line;
  }

  function addSystem(text) {
    return addLine('system', text);
  }

  function addSeparator(text) {
    return addLine('separator', text);
  }

  function addError(text) {
    return addLine('error', text);
  }

  function addChat(user, text, timestamp, mine, fromHistory) {
    const line = document.createElement('div');
    line.className = 'line chat';
    line.dataset.kind = 'chat';
    if (mine) line.classList.add('mine');
    if (fromHistory) line.classList.add('history');

    const time = document.createElement('time');
    time.className = 'time';
    if (typeof timestamp === 'string') time.dateTime = timestamp;
    time.textContent = formatTime(timestamp);

    const who = document.createElement('span');
    who.className = 'user';
    who.textContent = String(user ?? '');

    const msg = document.createElement('span');
    msg.className = 'text';
    msg.textContent = String(text ?? '');

    line.append(time, document.createTextNode(' '), who,
                document.createTextNode(' '), msg);
    shown.add(chatKey(user, text, timestamp));
    log.appendChild(line);
    scrollToBottom();
    return line;
  }

  // An announcement by a staff user: a banner line, text only.
  function addAnnouncement(payload) {
    const p = payload && typeof payload === 'object' ? payload : {};
    const line = document.createElement('div');
    line.className = 'line announcement';
    line.dataset.kind = 'announcement';
    line.setAttribute('role', 'status');

    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = 'Announcement';

    const time = document.createElement('time');
    time.className = 'time';
    if (typeof p.timestamp === 'string') time.dateTime = p.timestamp;
    time.textContent = formatTime(p.timestamp);

    const who = document.createElement('span');
    who.className = 'user';
    who.textContent = String(p.username ?? '');

    const msg = document.createElement('span');
    msg.className = 'text';
    msg.textContent = String(p.message ?? '');

    line.append(label, document.createTextNode(' '), time, document.createTextNode(' '), who,
                document.createTextNode(' '), msg);
    log.appendChild(line);
    scrollToBottom();
    return line;
  }

  function showError(payload) {
    if (Array.isArray(payload)) {
      if (payload.length === 0) addError('Error');
      for (const item of payload) {
        const msg = item && typeof item.msg === 'string' ? item.msg : JSON.stringify(item);
        addError(msg);
      }
    } else if (payload && typeof payload === 'object' && 'detail' in payload) {
      addError(String(payload.detail));
    } else {
      addError(`Error: ${JSON.stringify(payload)}`);
    }
  }

  // A big room's presence frame, as one compact line.
  function showPresence(p) {
    if (!p || typeof p !== 'object') return;
    const count = (n) => Number(n || 0).toLocaleString('en-US');
    const parts = [];
    if (p.joined_count) parts.push(`${count(p.joined_count)} joined`);
    if (p.left_count) parts.push(`${count(p.left_count)} left`);
    const line = addLine('presence', `${parts.join(', ')} · ${count(p.online)} online`);
    const names = (list) => (Array.isArray(list) ? list.map(String).join(', ') : '');
    const title = [];
    if (names(p.joined)) title.push(`joined: ${names(p.joined)}`);
    if (names(p.left)) title.push(`left: ${names(p.left)}`);
    if (title.length) line.title = title.join('\n');
  }

  function reconnectDelay() {
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** Math.min(attempts, 16));
    attempts += 1;
    return Math.round(base * (0.5 + Math.random() / 2));
  }

  function handleFrame(frame) {
    if (!frame || typeof frame !== 'object') return;
    const payload = frame.payload;
    switch (frame.action) {
      case 'authentication': {
        const code = payload && payload.status_code;
        if (code !== 200) {
          authFailed = true;
          const detail = payload && payload.data && payload.data.detail !== undefined
            ? String(payload.data.detail)
            : String((payload && payload.status_text) || code);
          addSystem(`Authentication failed: ${detail}`).classList.add('auth-failed');
          setStatus('Not connected', 'failed');
        }
        break;
      }
      case 'history': {
        const items = (Array.isArray(payload) ? payload : [])
          .filter((m) => m && typeof m === 'object')
          .filter((m) => !shown.has(chatKey(m.username, m.message, m.timestamp)));
        if (historyShown && items.length === 0) break; // a reconnect that missed nothing
        historyShown = true;
        addSeparator('— history —');
        for (const m of items) {
          addChat(m.username, m.message, m.timestamp,
                  username !== '' && m.username === username, true);
        }
        addSeparator('— now —');
        break;
      }
      case 'chat':
        addChat(frame.username, payload, frame.timestamp, frame.is_mine === true, false);
        break;
      case 'user_joined':
        addSystem(`${payload && payload.username} joined`).classList.add('joined');
        break;
      case 'user_left':
        addSystem(`${payload && payload.username} left`).classList.add('left');
        break;
      case 'presence':
        showPresence(payload);
        break;
      case 'announcement':
        addAnnouncement(payload);
        break;
      case 'error':
        showError(payload);
        break;
      case 'complete':
      case 'group_complete':
      case 'pong':
        break;
      default:
        // Unknown actions are ignored: a newer server may send more.
        break;
    }
  }

  function connect() {
    reconnectTimer = null;
    authFailed = false;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}/ws/chat/${encodeURIComponent(roomId)}/`;
    setStatus('Connecting…', 'connecting');

    const ws = new WebSocket(url);
    socket = ws;

    ws.addEventListener('open', () => {
      if (socket !== ws) return;
      announcedReconnect = false;
      attempts = 0;
      addSystem('Connected').classList.add('connected');
      setStatus('Connected', 'open');
    });

    ws.addEventListener('message', (event) => {
      if (socket !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        console.warn('chat: ignoring a frame that is not JSON', e);
        return;
      }
      handleFrame(frame);
    });

    ws.addEventListener('close', (event) => {
      if (socket !== ws) return;
      socket = null;
      if (leaving) return;
      if (authFailed || AUTH_CLOSE_CODES.has(event.code)) {
        setStatus('Not connected', 'failed');
        return;
      }
      if (event.code === 1000) {
        addSystem('Disconnected').classList.add('disconnected');
        setStatus('Disconnected', 'closed');
        return;
      }
      // While the server stays unreachable, further failed attempts only
      // update the status line instead of adding a line each time.
      if (!announcedReconnect) {
        addSystem('Disconnected — reconnecting').classList.add('disconnected');
        announcedReconnect = true;
      }
      setStatus('Reconnecting…', 'reconnecting');
      reconnectTimer = setTimeout(connect, reconnectDelay());
    });
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text === '') return;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      addError('Not connected: the message was not sent.');
      return;
    }
    socket.send(JSON.stringify({ action: 'chat', payload: text }));
    input.value = '';
    input.focus();
  });

  // Logging out: close the socket first (no reconnect, no "Disconnected"),
  // then let the form post.
  if (logoutForm) {
    logoutForm.addEventListener('submit', () => {
      leaving = true;
      if (reconnectTimer !== null) clearTimeout(reconnectTimer);
      if (socket) socket.close(1000, 'logged out');
    });
  }

  // Navigating away closes the socket; that is not a reason to reconnect.
  window.addEventListener('pagehide', () => {
    leaving = true;
    if (reconnectTimer !== null) clearTimeout(reconnectTimer);
  });
  window.addEventListener('pageshow', (event) => {
    // Back/forward cache restore: the old socket is gone, start again.
    if (event.persisted) {
      leaving = false;
      if (!socket) connect();
    }
  });

  connect();
  input.focus();
})();
