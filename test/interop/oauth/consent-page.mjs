// The gateway's consent page (GET /oauth2/authorize, POST /oauth2/consent) in a real Chromium,
// run by TestOAuthConsentPageInChromium (test/interop/oauth_consent_test.go).
//
//   node consent-page.mjs --gateway URL --idp URL --client-id ID --redirect-port PORT
//                         --username U --password P
//
// The client (public, registered by the Go test with redirect URI http://127.0.0.1:PORT/callback)
// sends one browser through, in this order, so that nothing remembered spoils a later case:
//   render     the page shows the client, its agent and the redirect URI; its headers;
//   deny       Deny sends the browser back to the client with error=access_denied;
//   csrf       a forged CSRF token (the hidden field changed before Allow) gets a 403 page and
//              the browser goes nowhere;
//   frame      a page of another loopback origin frames the consent URL: Chromium refuses to
//              render it (CSP frame-ancestors 'none', X-Frame-Options DENY); a framable page of
//              that origin in a second iframe shows that a rendered frame would be seen;
//   approve    Allow leads to testidp's login, the login back to the client with a code, which
//              redeems at the token endpoint (PKCE);
//   remembered a second authorization in the same browser goes straight to the IdP.
// It prints one JSON object; it exits non-zero only when it cannot run at all.
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { launchBrowser, loginAtTestIdP, startRedirectServer, waitForRedirect } from './browser.mjs';

const { values: args } = parseArgs({
  options: {
    gateway: { type: 'string' },
    idp: { type: 'string' },
    'client-id': { type: 'string' },
    'redirect-port': { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
  },
  strict: true,
});
for (const name of ['gateway', 'idp', 'client-id', 'redirect-port', 'username', 'password']) {
  if (!args[name]) throw new Error(`--${name} is required`);
}
const gateway = args.gateway.replace(/\/$/, '');
const clientID = args['client-id'];

const pkce = () => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};
const authorizeURL = (state, challenge) => {
  const q = new URLSearchParams({ response_type: 'code', client_id: clientID, redirect_uri: redirect.url,
    code_challenge: challenge, code_challenge_method: 'S256', state, resource: `${gateway}/notes` });
  return `${gateway}/oauth2/authorize?${q}`;
};
const text = async (page, selector) => ((await page.locator(selector).count()) > 0 ? (await page.textContent(selector)).trim() : null);

const redirect = await startRedirectServer({ port: Number(args['redirect-port']), path: '/callback' });
const out = {};
let browser = null;
let framer = null;
let step = 'launch';
try {
  browser = await launchBrowser({ timeoutMs: 60_000 });
  const { page, context } = browser;
  // Every document the browser asked the gateway or the IdP for, in order.
  const navigations = [];
  page.on('response', (res) => {
    const req = res.request();
    if (req.isNavigationRequest()) navigations.push({ step, method: req.method(), url: res.url(), status: res.status() });
  });
  out.navigations = navigations;

  // render
  step = 'render';
  const first = pkce();
  const res = await page.goto(authorizeURL('s-render', first.challenge));
  const headers = res.headers();
  out.render = {
    status: res.status(),
    url: page.url(),
    title: await page.title(),
    clientName: await text(page, '#client-name'),
    clientID: await text(page, '#client-id'),
    agent: await text(page, '#agent'),
    redirect: await text(page, '#redirect'),
    resource: await text(page, '#resource'),
    approveButton: await text(page, '#approve'),
    denyButton: await text(page, '#deny'),
    formAction: await page.getAttribute('form', 'action'),
    formMethod: await page.getAttribute('form', 'method'),
    hiddenFields: await page.$$eval('form input[type=hidden]', (els) => els.map((e) => e.name)),
    csp: headers['content-security-policy'] ?? null,
    xFrameOptions: headers['x-frame-options'] ?? null,
    cookies: (await context.cookies(gateway)).map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure })),
  };

  // deny, from the page rendered above
  step = 'deny';
  const denied = waitForRedirect(page, redirect.url, { timeoutMs: 60_000 });
  await page.click('#deny');
  const d = await denied;
  out.deny = { error: d.error, errorDescription: d.errorDescription, state: d.state, iss: d.iss, code: d.code };

  // csrf: a forged token in the hidden field
  step = 'csrf';
  const hitsBefore = redirect.requests.length;
  await page.goto(authorizeURL('s-csrf', first.challenge));
  await page.waitForSelector('#approve');
  out.csrf = {
    originalLength: await page.$eval('input[name=csrf]', (e) => e.value.length),
  };
  await page.evaluate(() => {
    document.querySelector('input[name=csrf]').value = 'A'.repeat(43);
  });
  const consentResponse = page.waitForResponse((r) => r.url().startsWith(`${gateway}/oauth2/consent`) && r.request().method() === 'POST');
  await page.click('#approve');
  const cr = await consentResponse;
  await page.waitForLoadState('load');
  await sleep(500); // anything that would follow (a redirect) has had time to start
  Object.assign(out.csrf, {
    status: cr.status(),
    location: cr.headers().location ?? null,
    pageURL: page.url(),
    message: await text(page, '#error'),
    approveShown: (await page.locator('#approve').count()) > 0,
    redirectHits: redirect.requests.length - hitsBefore,
    reachedIdP: navigations.some((n) => n.step === 'csrf' && n.url.startsWith(args.idp)),
  });

  // frame: another loopback origin frames the consent page
  step = 'frame';
  framer = await startFramer(authorizeURL('s-frame', first.challenge));
  const consoleMessages = [];
  const onConsole = (m) => consoleMessages.push(m.text());
  page.on('console', onConsole);
  const framedGatewayResponses = [];
  const onResponse = (r) => {
    if (r.url().startsWith(`${gateway}/oauth2/authorize`)) framedGatewayResponses.push(r.status());
  };
  page.on('response', onResponse);
  await page.goto(framer.url);
  await page.waitForSelector('#framer-ready');
  // The control frame renders; give the consent frame as long to (it never does).
  await page.frameLocator('#control').locator('#framable').waitFor();
  await sleep(1500);
  const frames = page.frames().filter((f) => f !== page.mainFrame());
  const consentFrame = frames.find((f) => f.name() === 'consent');
  const controlFrame = frames.find((f) => f.name() === 'control');
  const frameHas = async (frame, selector) => {
    if (!frame) return null;
    try {
      return (await frame.locator(selector).count()) > 0;
    } catch {
      return false;
    }
  };
  out.frame = {
    framerOrigin: new URL(framer.url).origin,
    frames: frames.map((f) => ({ name: f.name(), url: f.url() })),
    consentFrameURL: consentFrame?.url() ?? null,
    consentRendered: await frameHas(consentFrame, '#approve'),
    consentFrameText: consentFrame ? await consentFrame.evaluate(() => document.body?.innerText ?? '').catch((e) => `(unreadable: ${e.message})`) : null,
    controlRendered: await frameHas(controlFrame, '#framable'),
    gatewayAnswered: framedGatewayResponses,
    console: consoleMessages.filter((m) => /frame|ancestors|X-Frame-Options/i.test(m)),
  };
  page.off('console', onConsole);
  page.off('response', onResponse);

  // approve → testidp login → the client's redirect with a code, redeemed
  step = 'approve';
  const second = pkce();
  await page.goto(authorizeURL('s-approve', second.challenge));
  await page.waitForSelector('#approve');
  const approved = waitForRedirect(page, redirect.url, { timeoutMs: 120_000 });
  const toLogin = page.waitForURL((u) => u.href.startsWith(args.idp), { waitUntil: 'load' });
  await page.click('#approve');
  await toLogin;
  const loginPage = { url: page.url(), form: (await page.locator('#username').count()) > 0 };
  const login = await loginAtTestIdP(page, { username: args.username, password: args.password });
  const a = await approved;
  out.approve = { loginPage, loginError: login.error, code: Boolean(a.code), state: a.state, iss: a.iss, error: a.error };
  if (a.code) {
    const tr = await fetch(`${gateway}/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: a.code, redirect_uri: redirect.url,
        client_id: clientID, code_verifier: second.verifier }),
    });
    const body = await tr.json();
    out.approve.token = { status: tr.status, tokenType: body.token_type ?? null, hasAccessToken: Boolean(body.access_token),
      hasRefreshToken: Boolean(body.refresh_token), error: body.error ?? null };
  }
  out.approve.consentCookie = (await context.cookies(gateway)).some((c) => c.name === 'mcpgw-consent');

  // remembered: the same browser, a new authorization: no consent page
  step = 'remembered';
  const third = pkce();
  await page.goto('about:blank'); // waitForRedirect would take the page's current URL (the last redirect)
  const again = waitForRedirect(page, redirect.url, { timeoutMs: 120_000 });
  again.catch(() => {}); // not awaited when the consent page shows: closing the browser ends it
  await page.goto(authorizeURL('s-again', third.challenge));
  const consentShown = (await page.locator('#approve').count()) > 0;
  const atIdP = page.url().startsWith(args.idp);
  const login2 = atIdP ? await loginAtTestIdP(page, { username: args.username, password: args.password }) : { error: 'not at the IdP' };
  const r = consentShown ? null : await again;
  out.remembered = { consentShown, atIdP, loginError: login2.error, code: Boolean(r?.code), state: r?.state ?? null,
    authorizeStatuses: navigations.filter((n) => n.step === 'remembered' && n.url.startsWith(`${gateway}/oauth2/authorize`)).map((n) => n.status) };
} catch (err) {
  out.fatal = { step, message: String(err?.message ?? err), stack: String(err?.stack ?? '') };
} finally {
  await browser?.close();
  await framer?.close();
  await redirect.close();
}
process.stdout.write(JSON.stringify(out) + '\n');

// startFramer serves, on another loopback port (so another origin), a page framing the consent
// URL and a control page of its own that may be framed.
async function startFramer(consentURL) {
  const server = createServer((req, res) => {
    if (req.url === '/framable') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><html><body><p id="framable">a frame that may be shown</p></body></html>');
      return;
    }
    if (req.url !== '/') {
      res.writeHead(404).end();
      return;
    }
    const src = consentURL.replace(/&/g, '&amp;').replace(/"/g, '&quot;');
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html><head><title>Innocent page</title></head><body>' +
      `<iframe name="consent" id="consent" src="${src}" width="800" height="600"></iframe>` +
      '<iframe name="control" id="control" src="/framable" width="300" height="100"></iframe>' +
      '<p id="framer-ready">click the button!</p></body></html>');
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
