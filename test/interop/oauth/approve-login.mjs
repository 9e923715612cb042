// A person at the browser for a client that is not ours: opens an authorization URL, approves
// the gateway's consent page when it shows, logs in at testidp, and waits until the browser
// reaches the client's redirect URI (served by the client, not by this script). Used by
// TestOAuthConformanceAuthorizationServer for the conformance runner's authorization-code-grant,
// which prints the URL and waits for its own callback listener to be called.
//
//   node approve-login.mjs --url AUTHORIZE_URL --redirect-prefix http://127.0.0.1:PORT/callback
//                          --username U --password P
//
// It prints one JSON object: {consentShown, loginError, redirect: {code, state, iss, error}}.
import { parseArgs } from 'node:util';
import { launchBrowser, loginAtTestIdP, waitForRedirect } from './browser.mjs';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    'redirect-prefix': { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
  },
  strict: true,
});
for (const name of ['url', 'redirect-prefix', 'username', 'password']) {
  if (!args[name]) throw new Error(`--${name} is required`);
}

const out = {};
const browser = await launchBrowser({ timeoutMs: 60_000 });
try {
  const { page } = browser;
  const back = waitForRedirect(page, args['redirect-prefix'], { timeoutMs: 120_000 });
  back.catch(() => {}); // awaited below unless something failed first
  await page.goto(args.url);
  out.consentShown = (await page.locator('#approve').count()) > 0;
  if (out.consentShown) await page.click('#approve');
  const login = await loginAtTestIdP(page, { username: args.username, password: args.password });
  out.loginError = login.error;
  const got = await back;
  out.redirect = { code: Boolean(got.code), state: got.state, iss: got.iss, error: got.error };
  // Let the client's listener answer before the browser goes away.
  await page.waitForLoadState('load').catch(() => {});
} catch (err) {
  out.fatal = { message: String(err?.message ?? err), stack: String(err?.stack ?? ''), pageURL: browser.page.url() };
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
