// Browser-test harness for OAuth logins: Debian's Chromium driven by playwright-core.
//
//   import { launchBrowser, loginAtTestIdP, startRedirectServer, waitForRedirect } from './browser.mjs';
//
//   const redirect = await startRedirectServer({ port });        // the client's redirect_uri lives here
//   const browser = await launchBrowser();
//   try {
//     const redirected = waitForRedirect(browser.page, redirect.url); // before the navigation starts
//     await browser.page.goto(authorizeURL);
//     const login = await loginAtTestIdP(browser.page, { username: 'alice', password: 'alice' });
//     if (login.error) throw new Error(login.error);              // the form came back: wrong password
//     const { code, state } = await redirected;
//   } finally {
//     await browser.close();
//     await redirect.close();
//   }
//
// Why the redirect URI is a real loopback listener rather than page.route interception:
// page.route's handler is only called for the first URL of a redirect chain (playwright's
// own note), and the hop to the redirect URI is always the answer of a 302 (testidp's login,
// the gateway's callback), so a route on the redirect URI would never fire. A listener on
// 127.0.0.1:PORT is also what a native MCP client really uses (RFC 8252 §7.3), and the page
// then ends on a real document, so page.url() tells where the browser went even after the fact.
// waitForRedirect watches the page's requests, which the browser reports for every hop of a
// redirect chain, and falls back to page.url() when the navigation has already happened.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

// CHROMIUM is Debian's package (`make interop-deps` installs it): playwright's own browser
// download cannot be fetched on these machines.
export const CHROMIUM = process.env.MCPGW_CHROMIUM || '/usr/bin/chromium';

// Flags that work as root on a machine without a network beyond loopback: no sandbox (root),
// no GPU, and nothing that phones home (component updates, sync, background fetches, QUIC).
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// The testidp login form (internal/testidp/authorize.go: LoginField*, LoginButtonID, LoginErrorID).
const USERNAME = '#username';
const PASSWORD = '#password';
const SUBMIT = '#login';
const LOGIN_ERROR = '#login-error';

const DEFAULT_TIMEOUT_MS = 30_000;

// Chromium puts its SingletonSocket in $TMPDIR/org.chromium.Chromium.XXXXXX/ and aborts when that
// path passes the 107 bytes of a Unix socket address ("Socket path too long"): a Go test's
// TMPDIR (t.TempDir(), named after the test) easily does. The profile then goes under /tmp,
// and Chromium's TMPDIR is the profile itself, so everything it leaves is removed with it.
// The socket is TMPDIR + "/mcpgw-chromium-XXXXXX" (22) + "/org.chromium.Chromium.XXXXXX"
// (29) + "/SingletonSocket" (16): 67 bytes besides TMPDIR, so TMPDIR may have 40. (48 let
// TestOAuthTypeScriptSDKClient's 47-byte TMPDIR through, and Chromium died at launch.)
const MAX_TMPDIR_CHARS = 40;

/**
 * launchBrowser starts Chromium with a new, empty profile in a temporary directory.
 * @param {{ timeoutMs?: number }} [options] default timeout of every page action
 * @returns {Promise<{ context: import('playwright-core').BrowserContext, page: import('playwright-core').Page, close: () => Promise<void> }>}
 *   close() ends the browser and removes the profile; call it in a finally block.
 */
export async function launchBrowser({ timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const base = tmpdir().length <= MAX_TMPDIR_CHARS ? tmpdir() : '/tmp';
  const profile = await mkdtemp(join(base, 'mcpgw-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      env: { ...process.env, TMPDIR: profile },
      timeout: timeoutMs,
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw new Error(`launch ${CHROMIUM}: ${err.message}`);
  }
  context.setDefaultTimeout(timeoutMs);
  context.setDefaultNavigationTimeout(timeoutMs);
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    close: async () => {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * loginAtTestIdP fills testidp's login form on page (waiting for it to appear) and submits it.
 * It resolves once the page that answers the submission has loaded: with error set to the
 * form's message when the form came back (wrong username or password), else null.
 * @param {import('playwright-core').Page} page
 * @param {{ username: string, password: string }} credentials
 * @returns {Promise<{ error: string | null, url: string }>}
 */
export async function loginAtTestIdP(page, { username, password }) {
  await page.waitForSelector(USERNAME);
  await page.fill(USERNAME, username);
  await page.fill(PASSWORD, password);
  const loaded = page.waitForEvent('load');
  await page.click(SUBMIT);
  await loaded;
  const message = page.locator(LOGIN_ERROR);
  const error = (await message.count()) > 0 ? (await message.textContent()).trim() : null;
  return { error, url: page.url() };
}

/**
 * waitForRedirect resolves with the first URL starting with urlPrefix that page navigates to,
 * redirects included. Call it before the action that leads there; when page is already at
 * such a URL it resolves with that one.
 * @param {import('playwright-core').Page} page
 * @param {string} urlPrefix the redirect URI (or its start)
 * @param {{ timeoutMs?: number }} [options]
 * @returns {Promise<{ url: string, code: string | null, state: string | null, iss: string | null,
 *   error: string | null, errorDescription: string | null, params: Record<string, string> }>}
 */
export function waitForRedirect(page, urlPrefix, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const done = (url) => {
      cleanup();
      resolve(describeRedirect(url));
    };
    const onRequest = (request) => {
      if (request.isNavigationRequest() && request.url().startsWith(urlPrefix)) done(request.url());
    };
    const onClose = () => {
      cleanup();
      reject(new Error(`page closed before it was sent to ${urlPrefix}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no navigation to ${urlPrefix} within ${timeoutMs} ms; the page is at ${page.url()}`));
    }, timeoutMs);
    function cleanup() {
      clearTimeout(timer);
      page.off('request', onRequest);
      page.off('close', onClose);
    }
    page.on('request', onRequest);
    page.on('close', onClose);
    if (page.url().startsWith(urlPrefix)) done(page.url());
  });
}

function describeRedirect(url) {
  const params = Object.fromEntries(new URL(url).searchParams);
  return {
    url,
    code: params.code ?? null,
    state: params.state ?? null,
    iss: params.iss ?? null,
    error: params.error ?? null,
    errorDescription: params.error_description ?? null,
    params,
  };
}

/**
 * startRedirectServer listens on 127.0.0.1 (port 0: a free one) and answers GET path with a
 * small "signed in" page, recording each request's URL: the loopback redirect URI of a
 * native client. Anything else is 404.
 * @param {{ port?: number, path?: string }} [options]
 * @returns {Promise<{ url: string, requests: string[], close: () => Promise<void> }>}
 */
export async function startRedirectServer({ port = 0, path = '/callback' } = {}) {
  const requests = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (req.method !== 'GET' || url.pathname !== path) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    requests.push(`http://${req.headers.host}${req.url}`);
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': "default-src 'none'",
      'Cache-Control': 'no-store',
    });
    res.end('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signed in</title></head>' +
      '<body><p id="signed-in">Signed in. You can close this window.</p></body></html>\n');
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}${path}`,
    requests,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
