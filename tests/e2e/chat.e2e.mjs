#!/usr/bin/env node
// End-to-end test of chat-server in headless Chromium.
//
//   node chat.e2e.mjs <path-to-chat-server> <artifact-dir>
//
// Starts the server on a free loopback port with a fresh database seeded from
// fixtures/chat.json, drives two logged-in browser contexts (alice and bob)
// through the login form and the General room, and checks what each page
// shows. One summary line per step; the last line is "N passed, N failed".
// Exit code 0 when every step passed, 1 otherwise. Artifacts (screenshots,
// the server's log) go to <artifact-dir>.
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

if (process.argv.length < 4) {
  console.error('usage: node chat.e2e.mjs <path-to-chat-server> <artifact-dir>');
  process.exit(2);
}
const serverBin = path.resolve(process.argv[2]);
const artifacts = path.resolve(process.argv[3]);
fs.mkdirSync(artifacts, { recursive: true });

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
let stopped = false; // a failed step stops the steps that depend on it

async function step(name, fn) {
  if (stopped) {
    console.log(`skip - ${name}`);
    return;
  }
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   - ${name} (${Date.now() - t0} ms)`);
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
//   kind: 'system' | 'separator' | 'chat' | 'error'; text: exact text (of
//   .text for chat lines, of the whole line otherwise); user; mine (bool);
//   history (bool); count: at least this many matching lines (default 1).
async function waitForLine(page, want, timeout = TIMEOUT) {
  try {
    await page.waitForFunction((w) => {
      const lines = [...document.querySelectorAll(`#chat-log .line.${w.kind}`)];
      const n = lines.filter((el) => {
        const text = w.kind === 'chat' ? el.querySelector('.text')?.textContent : el.textContent;
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
    const text = w.kind === 'chat' ? el.querySelector('.text')?.textContent : el.textContent;
    if (w.text !== undefined && text !== w.text) return false;
    if (w.user !== undefined && el.querySelector('.user')?.textContent !== w.user) return false;
    if (w.history !== undefined && el.classList.contains('history') !== w.history) return false;
    return true;
  }).length, want);
}

async function send(page, text) {
  await page.fill('#chat-message-input', text);
  await page.press('#chat-message-input', 'Enter');
  await page.waitForFunction(() => document.querySelector('#chat-message-input').value === '',
    null, { timeout: TIMEOUT });
}

const pageNames = new Map();
const pageName = (p) => pageNames.get(p) || 'page';
const livePages = new Set();

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

// ------------------------------------------------------------ the server --

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chanc-e2e-'));
const dbPath = path.join(tmp, 'e2e.db');
const serverLogPath = path.join(artifacts, 'server.log');
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const serverArgs = ['--host', '127.0.0.1', '--port', String(port), '--db', dbPath, '--seed', FIXTURE];

console.log(`# server: ${serverBin} ${serverArgs.join(' ')}`);
console.log(`# artifacts: ${artifacts}`);

const logFd = fs.openSync(serverLogPath, 'w');
const server = spawn(serverBin, serverArgs, { stdio: ['ignore', logFd, logFd] });
fs.closeSync(logFd);
let serverExit = null;
const serverExited = new Promise((resolve) => {
  server.on('exit', (code, signal) => { serverExit = { code, signal }; resolve(serverExit); });
  server.on('error', (err) => { serverExit = { code: null, signal: null, error: err }; resolve(serverExit); });
});

function serverLogTail(n = 30) {
  try {
    const lines = fs.readFileSync(serverLogPath, 'utf8').trimEnd().split('\n');
    return lines.slice(-n).map((l) => `       | ${l}`).join('\n');
  } catch { return ''; }
}

let browser = null;
const dialogs = [];
const pageErrors = [];

async function newPage(context, name) {
  const page = await context.newPage();
  pageNames.set(page, name);
  livePages.add(page);
  page.on('dialog', (d) => { dialogs.push(`${name}: ${d.type()} ${d.message()}`); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on('close', () => livePages.delete(page));
  return page;
}

// Logs in through the /login form; returns the response to the POST.
async function loginThroughForm(page, username, password) {
  await page.waitForSelector('#login-form', { timeout: TIMEOUT });
  await page.fill('input[name="username"]', username);
  await page.fill('input[name="password"]', password);
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login',
      { timeout: TIMEOUT }),
    page.click('#login-form button[type="submit"]'),
  ]);
  await page.waitForLoadState('load');
  return resp;
}

async function checkSessionCookie(context, who) {
  const cookies = await context.cookies(base);
  const sid = cookies.find((c) => c.name === 'sessionid');
  check(sid, `${who}: a sessionid cookie after login`, cookies.map((c) => c.name));
  check(sid.httpOnly, `${who}: sessionid is HttpOnly`, sid);
  check(sid.sameSite === 'Lax', `${who}: sessionid is SameSite=Lax`, sid);
  check(sid.path === '/', `${who}: sessionid has Path=/`, sid);
}

let alice, bob, aliceCtx, bobCtx;

try {
  await step('server starts and accepts connections', async () => {
    check(fs.existsSync(serverBin), `server binary exists: ${serverBin}`);
    const deadline = Date.now() + SERVER_START_TIMEOUT;
    for (;;) {
      if (serverExit) throw new Error(`server exited early: ${JSON.stringify(serverExit)}\n${serverLogTail()}`);
      if (await canConnect(port)) break;
      if (Date.now() > deadline) throw new Error(`port ${port} not accepting after ${SERVER_START_TIMEOUT} ms\n${serverLogTail()}`);
      await sleep(50);
    }
  });

  await step('GET / without a session redirects to /login?next=/', async () => {
    const r = await fetch(`${base}/`, { redirect: 'manual' });
    check(r.status === 302, 'status 302', r.status);
    const loc = new URL(r.headers.get('location') || '', base);
    check(loc.pathname === '/login' && loc.searchParams.get('next') === '/',
      'Location /login?next=/', r.headers.get('location'));
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

  await step('a wrong password shows the form again with an error (HTTP 401)', async () => {
    const ctx = await browser.newContext();
    try {
      const page = await newPage(ctx, 'wrongpw');
      await page.goto(`${base}/login`);
      const title = await page.title();
      check(title === 'chanc chat — log in', 'login page title', title);
      const resp = await loginThroughForm(page, 'alice', 'not-alices-password');
      check(resp.status() === 401, 'POST /login with a wrong password answers 401', resp.status());
      check(new URL(page.url()).pathname === '/login', 'still on /login', page.url());
      check(await page.$('#login-form'), 'the login form is shown again');
      const err = (await page.textContent('#login-error') || '').trim();
      check(err !== '', 'an error line on the form', err);
      const cookies = await ctx.cookies(base);
      check(!cookies.some((c) => c.name === 'sessionid' && c.value), 'no session cookie', cookies);
    } finally {
      await ctx.close();
    }
  });

  await step('alice logs in through the form (/ → /login?next=/ → rooms)', async () => {
    alice = await newPage(aliceCtx, 'alice');
    await alice.goto(`${base}/`);
    check(new URL(alice.url()).pathname === '/login', 'redirected to /login', alice.url());
    check(await alice.inputValue('input[name="next"]') === '/', 'hidden next is "/"',
      await alice.inputValue('input[name="next"]'));
    const resp = await loginThroughForm(alice, 'alice', 'alice-pass-1');
    check(new URL(alice.url()).pathname === '/', 'lands on / after login', { url: alice.url(), status: resp.status() });
    await checkSessionCookie(aliceCtx, 'alice');
    const h1 = (await alice.textContent('h1') || '').trim();
    check(h1 === 'Rooms', 'rooms page heading', h1);
    const body = await alice.textContent('body');
    check(body.includes('alice'), 'rooms page shows the logged-in user');
    const rooms = await alice.$$eval('#room-list a, ul a', (as) => as.map((a) => ({ text: a.textContent.trim(), href: a.getAttribute('href') })));
    check(rooms.some((r) => r.text === 'General' && r.href === '/chat/1/'), 'a link General → /chat/1/', rooms);
  });

  await step('alice opens General: "Connected", then the history', async () => {
    await alice.goto(`${base}/chat/1/`);
    const data = await alice.evaluate(() => ({ ...document.body.dataset }));
    check(data.roomId === '1' && data.roomName === 'General' && data.username === 'alice',
      'body data-room-id/-room-name/-username', data);
    await waitForLine(alice, { kind: 'system', text: 'Connected' });
    await waitForLine(alice, { kind: 'separator', text: '— history —' });
    await waitForLine(alice, { kind: 'chat', user: 'alice', text: 'Welcome to General!', history: true, mine: true });
    await waitForLine(alice, { kind: 'chat', user: 'bob', text: 'hi alice', history: true, mine: false });
    await waitForLine(alice, { kind: 'separator', text: '— now —' });
    const lines = await logLines(alice);
    const i = lines.findIndex((l) => l.text === 'Welcome to General!');
    check(/^\d\d:\d\d:\d\d$/.test(lines[i].time), 'a history line has an HH:MM:SS time', lines[i]);
  });

  await step('bob logs in through the form (/login?next=/chat/1/ → the General room)', async () => {
    bob = await newPage(bobCtx, 'bob');
    await bob.goto(`${base}/login?next=${encodeURIComponent('/chat/1/')}`);
    await loginThroughForm(bob, 'bob', 'bob-pass-1');
    await checkSessionCookie(bobCtx, 'bob');
    if (new URL(bob.url()).pathname !== '/chat/1/') {
      // `next` not honoured is worth a line, not a failure of the chat steps.
      console.log(`       note: after login bob is at ${bob.url()}, not /chat/1/`);
    }
  });

  await step('bob in General: "Connected", then the history; alice sees "bob joined"', async () => {
    if (new URL(bob.url()).pathname !== '/chat/1/') await bob.goto(`${base}/chat/1/`);
    await waitForLine(bob, { kind: 'system', text: 'Connected' });
    await waitForLine(bob, { kind: 'separator', text: '— history —' });
    await waitForLine(bob, { kind: 'chat', user: 'alice', text: 'Has anyone seen the release notes?', history: true });
    await waitForLine(bob, { kind: 'separator', text: '— now —' });
    await waitForLine(alice, { kind: 'system', text: 'bob joined' });
  });

  await step('alice sends "hello bob"; bob sees it from alice; alice sees it marked mine', async () => {
    await send(alice, 'hello bob');
    await waitForLine(bob, { kind: 'chat', user: 'alice', text: 'hello bob', history: false, mine: false });
    await waitForLine(alice, { kind: 'chat', user: 'alice', text: 'hello bob', history: false, mine: true });
    const n = await countLines(alice, { kind: 'chat', text: 'hello bob', history: false });
    check(n === 1, 'alice got her own message once', n);
  });

  await step('bob sends "hi alice"; alice sees it from bob, her own one still mine', async () => {
    await send(bob, 'hi alice');
    await waitForLine(alice, { kind: 'chat', user: 'bob', text: 'hi alice', history: false, mine: false });
    await waitForLine(bob, { kind: 'chat', user: 'bob', text: 'hi alice', history: false, mine: true });
    await waitForLine(alice, { kind: 'chat', user: 'alice', text: 'hello bob', history: false, mine: true });
    const lines = await logLines(alice);
    const live = lines.filter((l) => l.cls.includes('chat') && !l.cls.includes('history'));
    check(live.every((l) => /^\d\d:\d\d:\d\d$/.test(l.time)), 'live lines have an HH:MM:SS time', live);
  });

  await step(`alice sends ${XSS}; both pages show it literally, no <img>, no dialog`, async () => {
    await send(alice, XSS);
    await waitForLine(bob, { kind: 'chat', user: 'alice', text: XSS, history: false });
    await waitForLine(alice, { kind: 'chat', user: 'alice', text: XSS, history: false, mine: true });
    await sleep(300); // give a would-be onerror handler time to fire
    for (const p of [alice, bob]) {
      const imgs = await p.$$eval('#chat-log img', (els) => els.length);
      check(imgs === 0, `${pageName(p)}: no <img> element in the log`, imgs);
    }
    check(dialogs.length === 0, 'no dialog fired', dialogs);
  });

  await step('bob reloads: "Connected" and the history with the new messages', async () => {
    const leftBefore = await countLines(alice, { kind: 'system', text: 'bob left' });
    const joinedBefore = await countLines(alice, { kind: 'system', text: 'bob joined' });
    await bob.reload();
    await waitForLine(bob, { kind: 'system', text: 'Connected' });
    await waitForLine(bob, { kind: 'separator', text: '— now —' });
    await waitForLine(bob, { kind: 'chat', user: 'alice', text: 'hello bob', history: true, mine: false });
    await waitForLine(bob, { kind: 'chat', user: 'bob', text: 'hi alice', history: true, mine: true, count: 2 });
    await waitForLine(bob, { kind: 'chat', user: 'alice', text: XSS, history: true });
    const imgs = await bob.$$eval('#chat-log img', (els) => els.length);
    check(imgs === 0, 'bob: no <img> element in the log after reload', imgs);
    const lines = await logLines(bob);
    const hist = lines.filter((l) => l.cls.includes('history')).map((l) => l.text);
    const order = ['hello bob', 'hi alice', XSS].map((t) => hist.lastIndexOf(t));
    check(order[0] < order[1] && order[1] < order[2], 'history oldest first', hist);
    await waitForLine(alice, { kind: 'system', text: 'bob left', count: leftBefore + 1 });
    await waitForLine(alice, { kind: 'system', text: 'bob joined', count: joinedBefore + 1 });
  });

  await step('screenshots alice.png and bob.png', async () => {
    await bob.screenshot({ path: path.join(artifacts, 'bob.png') });
    await alice.screenshot({ path: path.join(artifacts, 'alice.png') });
  });

  await step('bob closes his page; alice sees "bob left"', async () => {
    const leftBefore = await countLines(alice, { kind: 'system', text: 'bob left' });
    await bob.close();
    await waitForLine(alice, { kind: 'system', text: 'bob left', count: leftBefore + 1 });
    await alice.screenshot({ path: path.join(artifacts, 'alice.png') });
  });

  await step('alice logs out: / redirects to /login again', async () => {
    await alice.goto(`${base}/`);
    await Promise.all([
      alice.waitForNavigation({ timeout: TIMEOUT }),
      alice.click('#logout-form button[type="submit"]'),
    ]);
    await alice.goto(`${base}/`);
    check(new URL(alice.url()).pathname === '/login', 'after logout / lands on /login', alice.url());
  });

  await step('no JavaScript error on any page', async () => {
    check(pageErrors.length === 0, 'no pageerror', pageErrors);
  });
} catch (err) {
  failed++;
  console.log(`FAIL - unexpected: ${err && err.stack ? err.stack : err}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  stopped = false;
  await step('server exits 0 on SIGTERM', async () => {
    if (serverExit) throw new Error(`server had already exited: ${JSON.stringify(serverExit)}`);
    server.kill('SIGTERM');
    const res = await Promise.race([serverExited, sleep(SERVER_STOP_TIMEOUT).then(() => null)]);
    if (!res) {
      server.kill('SIGKILL');
      await serverExited;
      throw new Error(`server still running ${SERVER_STOP_TIMEOUT} ms after SIGTERM (killed)`);
    }
    check(res.code === 0, 'exit status 0', res);
  });
  if (serverExit === null) { server.kill('SIGKILL'); await serverExited; }
  if (failed > 0) {
    console.log(`# server log (${serverLogPath}), last lines:`);
    console.log(serverLogTail(40));
    console.log(`# database kept in ${tmp}`);
  } else {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`# screenshots: ${path.join(artifacts, 'alice.png')} ${path.join(artifacts, 'bob.png')}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}
