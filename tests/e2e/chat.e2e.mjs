#!/usr/bin/env node
// End-to-end test of chat-server in headless Chromium.
//
//   node chat.e2e.mjs <path-to-chat-server> <artifact-dir>
//
// Starts the server on a free loopback port with a fresh database seeded from
// fixtures/chat.json and walks, in two browser contexts (alice and bob),
// everything a user can do on the pages: a wrong password (the error, the
// form kept), logging in, the room list, entering a room, the history,
// sending (Enter and the Send button), the other user's messages, an
// announcement posted over HTTP by alice (staff) shown on both pages, the
// server's error for a message over the rate limit, a server restart on the
// same port and database (the pages reconnect and the conversation goes on),
// a private room (invisible to bob until alice invites him from its page),
// joining a public room with its "Join" button, logging out from a room (the
// user's other tab is closed by the server at once) and from the room list,
// and a room page asking to log in again afterwards. Every page runs under
// the server's strict Content-Security-Policy (no inline script or style):
// Chromium must report no violation on any page (securitypolicyviolation
// events and console messages are collected from the first page on; a
// deliberate inline script proves the collection works), and another site
// cannot frame a page. Every wait is for something on a page (or the
// server's port); nothing sleeps for a fixed time.
//
// One summary line per step; the last line is "N passed, N failed". Exit
// code 0 when every step passed, 1 otherwise. Artifacts in <artifact-dir>: a
// screenshot of every open page after each step (NN-step-page.png), the
// pages at a failure (fail-page.png), the server's log (server.log).
//
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (default
// 10000, the wait for one thing to appear on a page), E2E_HEADED=1 to watch.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const FIXTURE = path.join(REPO, 'fixtures', 'chat.json');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS || 10000);
const SERVER_START_TIMEOUT = 30000;
const SERVER_STOP_TIMEOUT = 10000;
const XSS = '<img src=x onerror=alert(1)>';
const LOGIN_ERROR = 'Please enter a correct username and password.';
// Low enough for a user clicking Send to reach it; the walk's other sends
// stay under it (each connection has its own bucket).
const RATE = 1;
const BURST = 4;
const RATE_ERROR = `Too many messages: at most ${RATE} per second (bursts of ${BURST}); ` +
  'this one was not processed';

if (process.argv.length < 4) {
  console.error('usage: node chat.e2e.mjs <path-to-chat-server> <artifact-dir>');
  process.exit(2);
}
const serverBin = path.resolve(process.argv[2]);
const artifacts = path.resolve(process.argv[3]);
fs.mkdirSync(artifacts, { recursive: true });
for (const f of fs.readdirSync(artifacts)) { // no screenshot of an earlier run left
  if (f.endsWith('.png')) fs.rmSync(path.join(artifacts, f));
}
const started = Date.now();

// ---------------------------------------------------------------- helpers --

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => { sock.destroy(); resolve(false); });
  });
}

let passed = 0;
let failed = 0;
let stepNo = 0;
let stopped = false; // a failed step stops the steps that depend on it

async function step(name, fn) {
  if (stopped) {
    console.log(`skip - ${name}`);
    return;
  }
  const t0 = Date.now();
  stepNo++;
  try {
    await fn();
    passed++;
    console.log(`ok   - ${name} (${Date.now() - t0} ms)`);
    await screenshots(name);
  } catch (err) {
    failed++;
    stopped = true;
    console.log(`FAIL - ${name} (${Date.now() - t0} ms)`);
    for (const l of String(err && err.stack ? err.stack : err).split('\n').slice(0, 12)) {
      console.log(`       ${l}`);
    }
    await dumpPages();
  }
}

// A check outside any wait: throws with what was expected and what was seen.
function check(cond, what, seen) {
  if (!cond) throw new Error(`${what}${seen === undefined ? '' : `\n  seen: ${JSON.stringify(seen)}`}`);
}

// The chat log of a page as plain objects, for checks and failure output.
async function logLines(page) {
  return page.$$eval('#chat-log .line', (els) => els.map((el) => ({
    cls: el.className,
    user: el.querySelector('.user')?.textContent ?? null,
    text: el.querySelector('.text')?.textContent ?? el.textContent,
    time: el.querySelector('.time')?.textContent ?? null,
  })));
}

// Waits until the page's chat log has a line matching `want`:
//   kind: 'system' | 'separator' | 'chat' | 'error' | 'announcement'; text:
//   exact text (of .text for chat and announcement lines, of the whole line
//   otherwise); user; mine (bool);
//   history (bool); count: at least this many matching lines (default 1).
async function waitForLine(page, want, timeout = TIMEOUT) {
  try {
    await page.waitForFunction((w) => {
      const lines = [...document.querySelectorAll(`#chat-log .line.${w.kind}`)];
      const n = lines.filter((el) => {
        const text = w.kind === 'chat' || w.kind === 'announcement'
          ? el.querySelector('.text')?.textContent : el.textContent;
        if (w.text !== undefined && text !== w.text) return false;
        if (w.user !== undefined && el.querySelector('.user')?.textContent !== w.user) return false;
        if (w.mine !== undefined && el.classList.contains('mine') !== w.mine) return false;
        if (w.history !== undefined && el.classList.contains('history') !== w.history) return false;
        return true;
      }).length;
      return n >= (w.count ?? 1);
    }, want, { timeout, polling: 50 });
  } catch (err) {
    const seen = await logLines(page).catch(() => '(page gone)');
    throw new Error(`${pageName(page)}: no log line ${JSON.stringify(want)} within ${timeout} ms\n` +
      `  log: ${JSON.stringify(seen, null, 1).replace(/\n\s*/g, ' ')}`);
  }
}

async function countLines(page, want) {
  return page.$$eval(`#chat-log .line.${want.kind}`, (els, w) => els.filter((el) => {
    const text = w.kind === 'chat' || w.kind === 'announcement'
      ? el.querySelector('.text')?.textContent : el.textContent;
    if (w.text !== undefined && text !== w.text) return false;
    if (w.user !== undefined && el.querySelector('.user')?.textContent !== w.user) return false;
    if (w.mine !== undefined && el.classList.contains('mine') !== w.mine) return false;
    if (w.history !== undefined && el.classList.contains('history') !== w.history) return false;
    return true;
  }).length, want);
}

// The status line under the form ("Connected", "Reconnecting…" …).
async function waitForStatus(page, text) {
  try {
    await page.waitForFunction((t) => document.querySelector('#chat-status')?.textContent === t,
      text, { timeout: TIMEOUT, polling: 50 });
  } catch {
    const seen = await page.textContent('#chat-status').catch(() => '(page gone)');
    throw new Error(`${pageName(page)}: status "${text}" not shown within ${TIMEOUT} ms (shows "${seen}")`);
  }
}

// Types a message and sends it with Enter, or with a click on Send.
async function send(page, text, { click = false } = {}) {
  await page.fill('#chat-message-input', text);
  if (click) await page.click('#chat-message-submit');
  else await page.press('#chat-message-input', 'Enter');
  await page.waitForFunction(() => document.querySelector('#chat-message-input').value === '',
    null, { timeout: TIMEOUT });
}

const pageNames = new Map();
const pageName = (p) => pageNames.get(p) || 'page';
const livePages = new Set();
const sockets = new Map(); // page → the WebSockets it opened, oldest first

async function screenshots(stepName) {
  const slug = stepName.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 48);
  for (const p of livePages) {
    if (p.isClosed()) continue;
    const file = path.join(artifacts, `${String(stepNo).padStart(2, '0')}-${slug}-${pageName(p)}.png`);
    await p.screenshot({ path: file, fullPage: true }).catch(() => {}); // mid-navigation: none
  }
}

async function dumpPages() {
  for (const p of livePages) {
    if (p.isClosed()) continue;
    const file = path.join(artifacts, `fail-${pageName(p)}.png`);
    try {
      await p.screenshot({ path: file, fullPage: true });
      console.log(`       screenshot: ${file}`);
      console.log(`       ${pageName(p)} at ${p.url()}`);
    } catch { /* page may be mid-navigation */ }
  }
}

// The room socket a page opened last (to /ws/chat/<id>/).
function roomSocket(page) {
  const list = (sockets.get(page) || []).filter((ws) => new URL(ws.url()).pathname.startsWith('/ws/chat/'));
  return list[list.length - 1];
}

// ------------------------------------------------------------ the server --

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chanc-e2e-'));
const dbPath = path.join(tmp, 'e2e.db');
const serverLogPath = path.join(artifacts, 'server.log');
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const serverArgs = ['--host', '127.0.0.1', '--port', String(port), '--db', dbPath, '--seed', FIXTURE,
  '--rate-limit', `${RATE}/${BURST}`];

console.log(`# server: ${serverBin} ${serverArgs.join(' ')}`);
console.log(`# artifacts: ${artifacts}`);
fs.writeFileSync(serverLogPath, '');

let server = null;
let serverExit = null;
let serverExited = null;

// Spawns chat-server (its output appended to server.log) and waits until it
// accepts connections on the port.
async function startServer() {
  const logFd = fs.openSync(serverLogPath, 'a');
  server = spawn(serverBin, serverArgs, { stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  serverExit = null;
  const proc = server;
  serverExited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => { serverExit = { code, signal }; resolve(serverExit); });
    proc.on('error', (err) => { serverExit = { code: null, signal: null, error: err }; resolve(serverExit); });
  });
  const deadline = Date.now() + SERVER_START_TIMEOUT;
  for (;;) {
    if (serverExit) throw new Error(`server exited early: ${JSON.stringify(serverExit)}\n${serverLogTail()}`);
    if (await canConnect(port)) return;
    if (Date.now() > deadline) throw new Error(`port ${port} not accepting after ${SERVER_START_TIMEOUT} ms\n${serverLogTail()}`);
    await sleep(50); // polls the port: the wait ends as soon as it accepts
  }
}

// SIGTERM and the exit status 0 (SIGKILL and an error after the timeout).
async function stopServer() {
  if (serverExit) throw new Error(`server had already exited: ${JSON.stringify(serverExit)}`);
  server.kill('SIGTERM');
  const res = await Promise.race([serverExited, sleep(SERVER_STOP_TIMEOUT).then(() => null)]);
  if (!res) {
    server.kill('SIGKILL');
    await serverExited;
    throw new Error(`server still running ${SERVER_STOP_TIMEOUT} ms after SIGTERM (killed)`);
  }
  check(res.code === 0, 'server exit status 0', res);
  server = null; // stopped on purpose: nothing left to stop
}

function serverLogTail(n = 30) {
  try {
    const lines = fs.readFileSync(serverLogPath, 'utf8').trimEnd().split('\n');
    return lines.slice(-n).map((l) => `       | ${l}`).join('\n');
  } catch { return ''; }
}

let browser = null;
const dialogs = [];
const pageErrors = [];
const cspViolations = []; // "page: what", from events and console messages

// Reports every CSP violation of the page's documents to cspViolations:
// the securitypolicyviolation event (an init script, which CSP does not
// govern, calling back into node) and Chromium's console message for it.
async function watchCsp(page, name) {
  await page.exposeBinding('__chancCspViolation', (src, v) => {
    cspViolations.push(`${name}: ${v.directive} blocked ${v.blocked || '(inline)'} at ${v.where}` +
      (v.sample ? ` (${v.sample})` : ''));
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__chancCspViolation({ directive: e.effectiveDirective || e.violatedDirective,
        blocked: e.blockedURI, where: location.pathname, sample: e.sample });
    });
  });
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to (execute|load|apply|connect|frame)/i.test(m.text())) {
      cspViolations.push(`${name}: console ${m.type()}: ${m.text()}`);
    }
  });
}

async function newPage(context, name) {
  const page = await context.newPage();
  pageNames.set(page, name);
  livePages.add(page);
  sockets.set(page, []);
  page.on('websocket', (ws) => sockets.get(page).push(ws));
  page.on('dialog', (d) => { dialogs.push(`${name}: ${d.type()} ${d.message()}`); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on('close', () => livePages.delete(page));
  await watchCsp(page, name);
  return page;
}

// Submits the login form (username typed unless null: kept from before);
// returns the response to the POST.
async function loginThroughForm(page, username, password) {
  await page.waitForSelector('#login-form', { timeout: TIMEOUT });
  if (username !== null) await page.fill('input[name="username"]', username);
  await page.fill('input[name="password"]', password);
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login',
      { timeout: TIMEOUT }),
    page.click('#login-form button[type="submit"]'),
  ]);
  await page.waitForLoadState('load');
  return resp;
}

// Clicks "Log out" on the page: POST /logout must answer 302 to /login
// (said with the answer when not), and the page follows it to the form.
async function logOut(page) {
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/logout',
      { timeout: TIMEOUT }),
    page.click('#logout-form button[type="submit"]'),
  ]);
  const body = resp.status() === 302 ? '' : await resp.text().catch(() => '');
  check(resp.status() === 302 && resp.headers().location === '/login',
    'POST /logout answers 302 to /login', { status: resp.status(), headers: resp.headers(), body });
  await page.waitForURL((u) => u.pathname === '/login', { timeout: TIMEOUT });
  await page.waitForSelector('#login-form', { timeout: TIMEOUT });
}

async function sessionCookie(context) {
  return (await context.cookies(base)).find((c) => c.name === 'sessionid' && c.value);
}

async function checkSessionCookie(context, who) {
  const sid = await sessionCookie(context);
  check(sid, `${who}: a sessionid cookie after login`, await context.cookies(base));
  check(sid.httpOnly, `${who}: sessionid is HttpOnly`, sid);
  check(sid.sameSite === 'Lax', `${who}: sessionid is SameSite=Lax`, sid);
  check(sid.path === '/', `${who}: sessionid has Path=/`, sid);
}

let alice, bob, bob2, aliceCtx, bobCtx;

try {
  await step('server starts and accepts connections', async () => {
    check(fs.existsSync(serverBin), `server binary exists: ${serverBin}`);
    await startServer();
  });

  await step('GET / without a session redirects to /login?next=/', async () => {
    const r = await fetch(`${base}/`, { redirect: 'manual' });
    check(r.status === 302, 'status 302', r.status);
    const loc = new URL(r.headers.get('location') || '', base);
    check(loc.pathname === '/login' && loc.searchParams.get('next') === '/',
      'Location /login?next=/', r.headers.get('location'));
  });

  await step('every page carries a strict CSP and X-Frame-Options: DENY', async () => {
    for (const p of ['/login', '/', '/static/room.js', '/nowhere']) {
      const r = await fetch(`${base}${p}`, { redirect: 'manual' });
      const csp = r.headers.get('content-security-policy') || '';
      for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]) {
        check(csp.split(';').map((x) => x.trim()).includes(d), `${p}: CSP has ${d}`, csp);
      }
      check(!/unsafe-inline|unsafe-eval/.test(csp), `${p}: CSP allows nothing inline`, csp);
      check(r.headers.get('x-frame-options') === 'DENY', `${p}: X-Frame-Options: DENY`, r.headers.get('x-frame-options'));
      check(r.headers.get('x-content-type-options') === 'nosniff', `${p}: nosniff`, r.headers.get('x-content-type-options'));
      check(r.headers.get('referrer-policy') === 'same-origin', `${p}: Referrer-Policy`, r.headers.get('referrer-policy'));
    }
  });

  await step('chromium launches', async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: process.env.E2E_HEADED !== '1',
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update'],
    });
    aliceCtx = await browser.newContext({ viewport: { width: 900, height: 700 } });
    bobCtx = await browser.newContext({ viewport: { width: 390, height: 700 } }); // phone-sized
  });

  await step('alice opens /: the login form (/login?next=/)', async () => {
    alice = await newPage(aliceCtx, 'alice');
    await alice.goto(`${base}/`);
    check(new URL(alice.url()).pathname === '/login', 'redirected to /login', alice.url());
    const title = await alice.title();
    check(title === 'chanc chat — log in', 'login page title', title);
    check(await alice.inputValue('input[name="next"]') === '/', 'hidden next is "/"',
      await alice.inputValue('input[name="next"]'));
    const err = (await alice.textContent('#login-error') || '').trim();
    check(err === '', 'no error line yet', err);
  });

  await step('Chromium enforces the CSP: an inline script is refused and reported (the watch works)', async () => {
    const ran = await alice.evaluate(() => new Promise((resolve) => {
      const s = document.createElement('script');
      s.textContent = 'window.__inlineRan = true';
      document.addEventListener('securitypolicyviolation', () => resolve(window.__inlineRan === true), { once: true });
      document.body.appendChild(s); // an allowed inline script runs right here
      if (window.__inlineRan) resolve(true);
    }));
    check(!ran, 'the inline script did not run', ran);
    const deadline = Date.now() + TIMEOUT; // the report crosses to node on its own
    while (!cspViolations.some((v) => v.startsWith('alice: script-src')) && Date.now() < deadline) await sleep(10);
    check(cspViolations.some((v) => v.startsWith('alice: script-src')), 'the violation was reported', cspViolations);
    cspViolations.length = 0; // that one was ours
  });

  await step('another site cannot frame a page (frame-ancestors \'none\')', async () => {
    const framer = await browser.newPage(); // not watched: its violation is the point
    try {
      // setContent returns at the framing page's load, after its iframe's
      const [resp] = await Promise.all([
        framer.waitForResponse((r) => new URL(r.url()).pathname === '/login', { timeout: TIMEOUT }),
        framer.setContent(`<iframe id="f" src="${base}/login"></iframe>`, { timeout: TIMEOUT }),
      ]);
      check(resp.status() === 200, 'the server answered the frame', resp.status());
      const f = framer.frames().find((fr) => fr !== framer.mainFrame());
      const form = f ? await f.$('#login-form').catch(() => null) : null;
      check(!form, 'the login form is not shown inside another page', f && f.url());
    } finally {
      await framer.close();
    }
  });

  await step('alice types a wrong password: 401, the error, the form kept with her username', async () => {
    const resp = await loginThroughForm(alice, 'alice', 'not-alices-password');
    check(resp.status() === 401, 'POST /login with a wrong password answers 401', resp.status());
    check(new URL(alice.url()).pathname === '/login', 'still on /login', alice.url());
    const err = (await alice.textContent('#login-error') || '').trim();
    check(err === LOGIN_ERROR, 'the error line on the form', err);
    check(await alice.inputValue('input[name="username"]') === 'alice', 'the username is kept',
      await alice.inputValue('input[name="username"]'));
    check(await alice.inputValue('input[name="password"]') === '', 'the password is not',
      await alice.inputValue('input[name="password"]'));
    check(await alice.inputValue('input[name="next"]') === '/', 'next is kept',
      await alice.inputValue('input[name="next"]'));
    check(!(await sessionCookie(aliceCtx)), 'no session cookie', await aliceCtx.cookies(base));
  });

  await step('alice types the right password (username kept): the room list', async () => {
    const resp = await loginThroughForm(alice, null, 'alice-pass-1');
    check(new URL(alice.url()).pathname === '/', 'lands on / after login', { url: alice.url(), status: resp.status() });
    await checkSessionCookie(aliceCtx, 'alice');
    const h1 = (await alice.textContent('h1') || '').trim();
    check(h1 === 'Rooms', 'rooms page heading', h1);
    const user = (await alice.textContent('#current-user') || '').trim();
    check(user === 'alice', '"Logged in as alice"', user);
    const rooms = await alice.$$eval('#room-list a', (as) => as.map((a) => ({ text: a.textContent.trim(), href: a.getAttribute('href') })));
    for (const [name, href] of [['General', '/chat/1/'], ['Random', '/chat/2/'], ['Private', '/chat/3/']]) {
      check(rooms.some((r) => r.text === name && r.href === href), `a link ${name} → ${href}`, rooms);
    }
    check(await alice.isVisible('#logout-form button'), 'a "Log out" button');
  });

  await step('alice clicks General: the room, "Connected", then the history', async () => {
    await Promise.all([
      alice.waitForURL((u) => u.pathname === '/chat/1/', { timeout: TIMEOUT }),
      alice.click('#room-list a:text-is("General")'),
    ]);
    const data = await alice.evaluate(() => ({ ...document.body.dataset }));
    check(data.roomId === '1' && data.roomName === 'General' && data.username === 'alice',
      'body data-room-id/-room-name/-username', data);
    const title = (await alice.textContent('#room-title') || '').trim();
    check(title === 'General', 'the room name as heading', title);
    await waitForLine(alice, { kind: 'system', text: 'Connected' });
    await waitForStatus(alice, 'Connected');
    await waitForLine(alice, { kind: 'separator', text: '— history —' });
    await waitForLine(alice, { kind: 'chat', user: 'alice', text: 'Welcome to General!', history: true, mine: true });
    await waitForLine(alice, { kind: 'chat', user: 'bob', text: 'hi alice', history: true, mine: false });
    await waitForLine(alice, { kind: 'separator', text: '— now —' });
    const lines = await logLines(alice);
    const i = lines.findIndex((l) => l.text === 'Welcome to General!');
    check(/^\d\d:\d\d:\d\d$/.test(lines[i].time), 'a history line has an HH:MM:SS time', lines[i]);
  });

  await step('bob logs in from /login?next=/chat/1/ and lands in General; alice sees "bob joined"', async () => {
    bob = await newPage(bobCtx, 'bob');
    await bob.goto(`${base}/login?next=${encodeURIComponent('/chat/1/')}`);
    await loginThroughForm(bob, 'bob', 'bob-pass-1');
    await checkSessionCookie(bobCtx, 'bob');
    check(new URL(bob.url()).pathname === '/chat/1/', 'next honoured: bob is in General', bob.url());
    await waitForLine(bob, { kind: 'system', text: 'Connected' });
    await waitForLine(bob, { kind: 'separator', text: '— history —' });
    await waitForLine(bob, { kind: 'chat', user: 'alice', text: 'Has anyone seen the release notes?', history: true });
    await waitForLine(bob, { kind: 'separator', text: '— now —' });
    await waitForLine(alice, { kind: 'system', text: 'bob joined' });
  });

  await step('alice sends "hello bob" (Enter); bob sees it from alice; alice sees it marked mine', async () => {
    await send(alice, 'hello bob');
    await waitForLine(bob, { kind: 'chat', user: 'alice', text: 'hello bob', history: false, mine: false });
    await waitForLine(alice, { kind: 'chat', user: 'alice', text: 'hello bob', history: false, mine: true });
    const n = await countLines(alice, { kind: 'chat', text: 'hello bob', history: false });
    check(n === 1, 'alice got her own message once', n);
  });

  await step('bob sends "hi alice, bob here" (the Send button); alice sees it from bob', async () => {
    await send(bob, 'hi alice, bob here', { click: true });
    await waitForLine(alice, { kind: 'chat', user: 'bob', text: 'hi alice, bob here', history: false, mine: false });
    await waitForLine(bob, { kind: 'chat', user: 'bob', text: 'hi alice, bob here', history: false, mine: true });
    const lines = await logLines(alice);
    const live = lines.filter((l) => l.cls.includes('chat') && !l.cls.includes('history'));
    check(live.every((l) => /^\d\d:\d\d:\d\d$/.test(l.time)), 'live lines have an HH:MM:SS time', live);
  });

  await step(`alice sends ${XSS}; both pages show it as text, no <img>`, async () => {
    await send(alice, XSS);
    await waitForLine(bob, { kind: 'chat', user: 'alice', text: XSS, history: false });
    await waitForLine(alice, { kind: 'chat', user: 'alice', text: XSS, history: false, mine: true });
    // Inserted as HTML, the <img> would be in the DOM with the line itself.
    for (const p of [alice, bob]) {
      const imgs = await p.$$eval('#chat-log img', (els) => els.length);
      check(imgs === 0, `${pageName(p)}: no <img> element in the log`, imgs);
    }
  });

  await step('alice (staff) POSTs an announcement with her session cookie: 201; both pages show it as a banner line, as text', async () => {
    const message = 'Fire drill at 15:00 <b>now</b>';
    const url = `${base}/api/rooms/1/announcements`;
    const resp = await aliceCtx.request.post(url, { data: { message }, headers: { Origin: base } });
    const body = await resp.json().catch(() => null);
    check(resp.status() === 201 && body && body.message === message && body.username === 'alice',
      'POST /api/rooms/1/announcements answers 201 with the announcement', { status: resp.status(), body });
    for (const p of [alice, bob]) {
      await waitForLine(p, { kind: 'announcement', user: 'alice', text: message });
      const bold = await p.$$eval('#chat-log .line.announcement b', (els) => els.length);
      check(bold === 0, `${pageName(p)}: the announcement is text (no <b> element)`, bold);
    }
    const refused = await bobCtx.request.post(url, { data: { message: 'me too' }, headers: { Origin: base } });
    check(refused.status() === 403, 'bob (not staff) is refused with 403', refused.status());
  });

  await step('bob reloads: "Connected" and the history with the new messages, oldest first', async () => {
    const leftBefore = await countLines(alice, { kind: 'system', text: 'bob left' });
    const joinedBefore = await countLines(alice, { kind: 'system', text: 'bob joined' });
    await bob.reload();
    await waitForLine(bob, { kind: 'system', text: 'Connected' });
    await waitForLine(bob, { kind: 'separator', text: '— now —' });
    await waitForLine(bob, { kind: 'chat', user: 'alice', text: 'hello bob', history: true, mine: false });
    await waitForLine(bob, { kind: 'chat', user: 'bob', text: 'hi alice, bob here', history: true, mine: true });
    await waitForLine(bob, { kind: 'chat', user: 'alice', text: XSS, history: true });
    const imgs = await bob.$$eval('#chat-log img', (els) => els.length);
    check(imgs === 0, 'bob: no <img> element in the log after reload', imgs);
    const lines = await logLines(bob);
    const hist = lines.filter((l) => l.cls.includes('history')).map((l) => l.text);
    const order = ['hello bob', 'hi alice, bob here', XSS].map((t) => hist.indexOf(t));
    check(order[0] < order[1] && order[1] < order[2], 'history oldest first', hist);
    await waitForLine(alice, { kind: 'system', text: 'bob left', count: leftBefore + 1 });
    await waitForLine(alice, { kind: 'system', text: 'bob joined', count: joinedBefore + 1 });
  });

  await step(`bob clicks Send faster than ${RATE}/s: the server's rate_limited error shows on his page`, async () => {
    let sent = 0;
    for (; sent < 40; sent++) { // 40 sends in well under the 36 s they would need to stay under it
      await send(bob, `burst ${sent + 1}`, { click: true });
      if (await countLines(bob, { kind: 'error' })) { sent++; break; }
    }
    await waitForLine(bob, { kind: 'error', text: RATE_ERROR });
    // Every message is answered: shown as sent, or an error in its place.
    await bob.waitForFunction((n) => {
      const mine = [...document.querySelectorAll('#chat-log .line.chat.mine:not(.history) .text')]
        .filter((el) => el.textContent.startsWith('burst ')).length;
      return mine + document.querySelectorAll('#chat-log .line.error').length === n;
    }, sent, { timeout: TIMEOUT, polling: 50 });
    const accepted = await bob.$$eval('#chat-log .line.chat.mine:not(.history) .text',
      (els) => els.map((el) => el.textContent).filter((t) => t.startsWith('burst ')));
    check(accepted.length >= BURST && accepted.length < sent, `at least the burst of ${BURST} went through, not all ${sent}`, accepted);
    // alice gets what went through, from bob, and none of bob's errors.
    await waitForLine(alice, { kind: 'chat', user: 'bob', text: accepted[accepted.length - 1], history: false });
    const aliceErrors = await countLines(alice, { kind: 'error' });
    check(aliceErrors === 0, 'the error went to the sender only', aliceErrors);
  });

  await step('chat-server stops: both pages say they are reconnecting; a message cannot be sent', async () => {
    const before = await Promise.all([alice, bob].map((p) => countLines(p, { kind: 'system', text: 'Disconnected — reconnecting' })));
    await stopServer();
    for (const [i, p] of [alice, bob].entries()) {
      await waitForLine(p, { kind: 'system', text: 'Disconnected — reconnecting', count: before[i] + 1 });
      await waitForStatus(p, 'Reconnecting…');
    }
    await alice.fill('#chat-message-input', 'anyone there?');
    await alice.press('#chat-message-input', 'Enter');
    await waitForLine(alice, { kind: 'error', text: 'Not connected: the message was not sent.' });
    const kept = await alice.inputValue('#chat-message-input');
    check(kept === 'anyone there?', 'the text stays in the input', kept);
    await alice.fill('#chat-message-input', '');
  });

  await step('chat-server restarts on the same port and database: both pages reconnect, history not repeated', async () => {
    const connected = await Promise.all([alice, bob].map((p) => countLines(p, { kind: 'system', text: 'Connected' })));
    await startServer();
    for (const [i, p] of [alice, bob].entries()) {
      await waitForLine(p, { kind: 'system', text: 'Connected', count: connected[i] + 1 }, TIMEOUT + 2000);
      await waitForStatus(p, 'Connected');
    }
    // The history that came again adds nothing: it was all on the page.
    for (const [p, text] of [[alice, 'hello bob'], [bob, 'hi alice, bob here']]) {
      const n = await countLines(p, { kind: 'chat', text });
      check(n === 1, `${pageName(p)}: "${text}" shown once after the reconnect`, await logLines(p));
    }
  });

  await step('the conversation goes on after the restart', async () => {
    await send(alice, 'still here after the restart');
    await waitForLine(bob, { kind: 'chat', user: 'alice', text: 'still here after the restart', history: false, mine: false });
    await waitForLine(alice, { kind: 'chat', user: 'alice', text: 'still here after the restart', history: false, mine: true });
    await send(bob, 'me too', { click: true });
    await waitForLine(alice, { kind: 'chat', user: 'bob', text: 'me too', history: false, mine: false });
    await waitForLine(bob, { kind: 'chat', user: 'bob', text: 'me too', history: false, mine: true });
  });

  // Room ids from fixtures/chat.json: 1 General, 2 Random (alice, testuser),
  // 3 Private (private: alice only).
  await step('bob\'s room list has no Private, and /chat/3/ answers 404 as if it did not exist', async () => {
    await Promise.all([
      bob.waitForURL((u) => u.pathname === '/', { timeout: TIMEOUT }),
      bob.click('#back-link'),
    ]);
    const rooms = await bob.$$eval('#room-list li', (lis) => lis.map((li) => li.textContent.replace(/\s+/g, ' ').trim()));
    check(rooms.some((r) => r.startsWith('General')) && rooms.some((r) => r.startsWith('Random')),
      'General and Random are listed', rooms);
    check(!rooms.some((r) => r.includes('Private')), 'Private is not listed', rooms);
    const resp = await bob.goto(`${base}/chat/3/`);
    check(resp.status() === 404, 'GET /chat/3/ answers 404', resp.status());
    const missing = await bobCtx.request.get(`${base}/chat/424242/`);
    check(missing.status() === 404 && (await resp.text()) === (await missing.text()),
      'the same answer as a room that does not exist', await resp.text());
    check(!(await bob.$('#chat-log')), 'no room page');
    await bob.goto(`${base}/`);
  });

  await step('bob opens Random (not joined): a "Join" button, no socket; he clicks it and is in the room', async () => {
    const before = (sockets.get(bob) || []).length;
    await Promise.all([
      bob.waitForURL((u) => u.pathname === '/chat/2/', { timeout: TIMEOUT }),
      bob.click('#room-list a:text-is("Random")'),
    ]);
    await bob.waitForSelector('#join-form button', { timeout: TIMEOUT });
    check(!(await bob.$('#chat-log')), 'no chat before joining');
    check((sockets.get(bob) || []).length === before, 'no WebSocket opened by the join page');
    const [joined] = await Promise.all([
      bob.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/chat/2/join',
        { timeout: TIMEOUT }),
      bob.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/chat/2/',
        { timeout: TIMEOUT }),
      bob.click('#join-form button'),
    ]);
    check(joined.status() === 302, 'POST /chat/2/join answers 302', joined.status());
    await bob.waitForLoadState('load');
    await waitForLine(bob, { kind: 'system', text: 'Connected' });
    await waitForLine(bob, { kind: 'separator', text: '— now —' });
    check(!(await bob.$('#members')), 'a public room has no member list');
  });

  await step('alice opens Private: its members and an "Invite" form; she invites bob', async () => {
    await Promise.all([
      alice.waitForURL((u) => u.pathname === '/', { timeout: TIMEOUT }),
      alice.click('#back-link'),
    ]);
    const tag = (await alice.textContent('#room-list li.private .room-tag') || '').trim();
    check(tag === 'private', 'Private is marked private on her list', tag);
    await Promise.all([
      alice.waitForURL((u) => u.pathname === '/chat/3/', { timeout: TIMEOUT }),
      alice.click('#room-list a:text-is("Private")'),
    ]);
    await waitForLine(alice, { kind: 'system', text: 'Connected' });
    let names = await alice.$$eval('#member-list li', (lis) => lis.map((li) => li.textContent));
    check(JSON.stringify(names) === '["alice"]', 'the members: alice', names);
    await alice.fill('#invite-form input[name="username"]', 'bob');
    const [resp] = await Promise.all([
      alice.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/chat/3/members',
        { timeout: TIMEOUT }),
      alice.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/chat/3/',
        { timeout: TIMEOUT }),
      alice.click('#invite-form button[type="submit"]'),
    ]);
    check(resp.status() === 302, 'POST /chat/3/members answers 302', resp.status());
    await alice.waitForLoadState('load');
    names = await alice.$$eval('#member-list li', (lis) => lis.map((li) => li.textContent));
    check(JSON.stringify(names) === '["alice","bob"]', 'the members: alice, bob', names);
    await waitForLine(alice, { kind: 'system', text: 'Connected' });
    const err = (await alice.textContent('#invite-error') || '').trim();
    check(err === '', 'no error under the form', err);
  });

  await step('bob now sees Private on his room list, opens it and chats with alice', async () => {
    await Promise.all([
      bob.waitForURL((u) => u.pathname === '/', { timeout: TIMEOUT }),
      bob.click('#back-link'),
    ]);
    await Promise.all([
      bob.waitForURL((u) => u.pathname === '/chat/3/', { timeout: TIMEOUT }),
      bob.click('#room-list a:text-is("Private")'),
    ]);
    await waitForLine(bob, { kind: 'system', text: 'Connected' });
    await waitForLine(alice, { kind: 'system', text: 'bob joined' });
    await send(bob, 'hello from Private');
    await waitForLine(alice, { kind: 'chat', user: 'bob', text: 'hello from Private', mine: false });
    await waitForLine(bob, { kind: 'chat', user: 'bob', text: 'hello from Private', mine: true });
  });

  await step('bob opens General in a second tab; his session\'s sockets are about to end', async () => {
    bob2 = await newPage(bobCtx, 'bob-tab2');
    await bob2.goto(`${base}/chat/1/`);
    await waitForLine(bob2, { kind: 'system', text: 'Connected' });
  });

  await step('bob clicks "Log out" in the room: 302 to the login form, his room socket closed', async () => {
    const ws = roomSocket(bob);
    check(ws && !ws.isClosed(), 'bob has an open room socket', ws && ws.url());
    const leftBefore = await countLines(alice, { kind: 'system', text: 'bob left' });
    await logOut(bob);
    if (!ws.isClosed()) await ws.waitForEvent('close', { timeout: TIMEOUT });
    check(!(await sessionCookie(bobCtx)), 'the session cookie is cleared', await bobCtx.cookies(base));
    await waitForLine(alice, { kind: 'system', text: 'bob left', count: leftBefore + 1 });
    const err = (await bob.textContent('#login-error') || '').trim();
    check(err === '', 'the login form, without an error', err);
  });

  await step('bob\'s other tab was closed by the server at once: "Logged out.", no reconnect', async () => {
    const ws = roomSocket(bob2);
    if (!ws.isClosed()) await ws.waitForEvent('close', { timeout: TIMEOUT });
    await waitForLine(bob2, { kind: 'system', text: 'Authentication failed: Logged out.' });
    await waitForStatus(bob2, 'Not connected');
    const n = (sockets.get(bob2) || []).length;
    check(n === 1, 'no second connection attempt', n);
    await bob2.close();
  });

  await step('bob opens the room page again: he is asked to log in, and back in the room after', async () => {
    await bob.goto(`${base}/chat/1/`);
    const u = new URL(bob.url());
    check(u.pathname === '/login' && u.searchParams.get('next') === '/chat/1/',
      'redirected to /login?next=/chat/1/', bob.url());
    check(await bob.inputValue('input[name="next"]') === '/chat/1/', 'the form goes back to the room',
      await bob.inputValue('input[name="next"]'));
    check(!(await bob.$('#chat-log')), 'no room page');
    await loginThroughForm(bob, 'bob', 'bob-pass-1');
    check(new URL(bob.url()).pathname === '/chat/1/', 'back in General', bob.url());
    await waitForLine(bob, { kind: 'system', text: 'Connected' });
    await waitForLine(bob, { kind: 'chat', user: 'bob', text: 'me too', history: true, mine: true });
  });

  await step('alice clicks "← Rooms", then "Log out" on the room list: the login form; / asks to log in', async () => {
    await Promise.all([
      alice.waitForURL((u) => u.pathname === '/', { timeout: TIMEOUT }),
      alice.click('#back-link'),
    ]);
    await logOut(alice); // Chromium's empty form post: this answered 500
    check(!(await sessionCookie(aliceCtx)), 'the session cookie is cleared', await aliceCtx.cookies(base));
    await alice.goto(`${base}/`);
    check(new URL(alice.url()).pathname === '/login', 'after logout / lands on /login', alice.url());
  });

  await step('no JavaScript error, no dialog and no CSP violation on any page', async () => {
    check(pageErrors.length === 0, 'no pageerror', pageErrors);
    check(dialogs.length === 0, 'no dialog', dialogs);
    check(cspViolations.length === 0, 'no CSP violation reported', cspViolations);
  });
} catch (err) {
  failed++;
  console.log(`FAIL - unexpected: ${err && err.stack ? err.stack : err}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  livePages.clear();
  stopped = false;
  if (server) { // not when a failure came while it was stopped on purpose
    await step('server exits 0 on SIGTERM', async () => {
      await stopServer();
    });
  }
  if (server && serverExit === null) { server.kill('SIGKILL'); await serverExited; }
  if (failed > 0) {
    console.log(`# server log (${serverLogPath}), last lines:`);
    console.log(serverLogTail(40));
    console.log(`# database kept in ${tmp}`);
  } else {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`# screenshots: ${artifacts}/NN-*.png; took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}
