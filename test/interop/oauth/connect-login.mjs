// The login handler of `mcpgw connect` in TestConnectStdioBridge: the bridge runs it with the
// authorization URL as its last argument instead of opening a browser (--login-handler, or
// MCP_CONNECT_LOGIN_HANDLER). A person in Chromium approves the gateway's consent page when
// it shows and logs in at testidp; the browser then reaches the bridge's loopback redirect URI
// (the redirect_uri of the URL), which the bridge itself serves.
//
//   CONNECT_LOGIN_USERNAME=alice CONNECT_LOGIN_PASSWORD=... node connect-login.mjs AUTHORIZE_URL
//
// The credentials come from the environment: the handler's command line is split on spaces.
// It prints one JSON line on stdout (the bridge sends it to its stderr, never to the protocol)
// and exits non-zero when the login did not reach the redirect URI.
import { launchBrowser, loginAtTestIdP, waitForRedirect } from './browser.mjs';

const authorizeURL = process.argv.at(-1);
const username = process.env.CONNECT_LOGIN_USERNAME;
const password = process.env.CONNECT_LOGIN_PASSWORD;
if (!authorizeURL?.startsWith('http') || !username || !password) {
  throw new Error('usage: CONNECT_LOGIN_USERNAME=U CONNECT_LOGIN_PASSWORD=P node connect-login.mjs AUTHORIZE_URL');
}
const redirectURI = new URL(authorizeURL).searchParams.get('redirect_uri');

const out = { handler: 'connect-login' };
let ok = false;
const browser = await launchBrowser({ timeoutMs: 60_000 });
try {
  const { page } = browser;
  const back = waitForRedirect(page, redirectURI, { timeoutMs: 120_000 });
  back.catch(() => {}); // awaited below unless something failed first
  await page.goto(authorizeURL);
  out.consentShown = (await page.locator('#approve').count()) > 0;
  if (out.consentShown) await page.click('#approve');
  const login = await loginAtTestIdP(page, { username, password });
  out.loginError = login.error;
  const got = await back;
  out.redirect = { code: Boolean(got.code), error: got.error };
  ok = Boolean(got.code);
  // Let the bridge's listener answer before the browser goes away.
  await page.waitForLoadState('load').catch(() => {});
} catch (err) {
  out.fatal = { message: String(err?.message ?? err), pageURL: browser.page.url() };
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
process.exitCode = ok ? 0 : 1;
