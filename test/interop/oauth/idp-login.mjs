// A confidential OAuth client signing a user in at testidp through a real Chromium: the
// authorization code flow with PKCE S256, run by test/interop/oauth_browser_test.go.
//
//   node idp-login.mjs --issuer URL --client-id ID --client-secret SECRET --redirect-port PORT
//                      --username U --password P [--scope "openid ..."] [--before-refresh URL]
//
// It discovers the endpoints, starts the redirect URI's loopback listener
// (http://127.0.0.1:PORT/callback), opens the authorization URL in Chromium, fills the login
// form, captures the code, redeems it at the token endpoint (client_secret_basic), verifies
// the ID token's signature with the JWKS, POSTs to --before-refresh (the Go test changes the
// user's groups there), refreshes, then replays the first refresh token and the code. It
// prints one JSON object on stdout: {"outcome": "tokens", ...} or, when the login form came
// back, {"outcome": "login-refused", ...}. Any other failure exits non-zero.
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { parseArgs } from 'node:util';
import { launchBrowser, loginAtTestIdP, startRedirectServer, waitForRedirect } from './browser.mjs';

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-port': { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
    scope: { type: 'string', default: 'openid profile email groups' },
    'before-refresh': { type: 'string' },
  },
  strict: true,
});
for (const name of ['issuer', 'client-id', 'client-secret', 'redirect-port', 'username', 'password']) {
  if (!args[name]) throw new Error(`--${name} is required`);
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const random = () => b64url(randomBytes(32));

async function getJSON(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return res.json();
}

// tokenRequest POSTs form to the token endpoint with client_secret_basic (RFC 6749 §2.3.1:
// both parts form-urlencoded before base64) and returns { status, body }.
async function tokenRequest(endpoint, form) {
  const basic = Buffer.from(`${encodeURIComponent(args['client-id'])}:${encodeURIComponent(args['client-secret'])}`).toString('base64');
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: `Basic ${basic}` },
    body: new URLSearchParams(form),
  });
  return { status: res.status, body: await res.json() };
}

// verifiedClaims checks an RS256 JWT's signature with the key its kid names in jwks and
// returns its claims (the Go test checks iss, aud, nonce and the rest).
function verifiedClaims(jwt, jwks) {
  const [h, p, s] = jwt.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  if (header.alg !== 'RS256') throw new Error(`ID token alg ${header.alg}`);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`ID token kid ${header.kid} is not in the JWKS`);
  const ok = verify('RSA-SHA256', Buffer.from(`${h}.${p}`), createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(s, 'base64url'));
  if (!ok) throw new Error('ID token signature does not verify');
  return JSON.parse(Buffer.from(p, 'base64url'));
}

async function main() {
  const meta = await getJSON(`${args.issuer}/.well-known/openid-configuration`);
  if (!meta.code_challenge_methods_supported?.includes('S256')) throw new Error('the IdP does not announce PKCE S256');
  const jwks = await getJSON(meta.jwks_uri);

  const verifier = random();
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const state = random();
  const nonce = random();
  const redirect = await startRedirectServer({ port: Number(args['redirect-port']) });
  const authorize = new URL(meta.authorization_endpoint);
  authorize.search = new URLSearchParams({
    response_type: 'code', client_id: args['client-id'], redirect_uri: redirect.url, scope: args.scope,
    state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
  }).toString();

  const browser = await launchBrowser();
  let redirected;
  try {
    const { page } = browser;
    const landed = waitForRedirect(page, redirect.url);
    landed.catch(() => {}); // awaited below only when the login succeeded
    await page.goto(authorize.toString());
    const login = await loginAtTestIdP(page, { username: args.username, password: args.password });
    if (login.error) {
      console.log(JSON.stringify({
        outcome: 'login-refused',
        error: login.error,
        pageURL: login.url,
        formShownAgain: (await page.locator('#username').count()) === 1,
        redirectHits: redirect.requests.length,
      }));
      return;
    }
    redirected = await landed;
    redirected.pageText = (await page.locator('#signed-in').textContent())?.trim();
  } finally {
    await browser.close();
    await redirect.close();
  }
  if (redirected.error) throw new Error(`authorization refused: ${redirected.error}: ${redirected.errorDescription}`);
  if (redirected.state !== state) throw new Error('the state came back changed');

  const first = await tokenRequest(meta.token_endpoint, {
    grant_type: 'authorization_code', code: redirected.code, redirect_uri: redirect.url, code_verifier: verifier,
  });
  if (first.status !== 200) throw new Error(`code redemption: ${first.status} ${JSON.stringify(first.body)}`);

  if (args['before-refresh']) {
    const res = await fetch(args['before-refresh'], { method: 'POST' });
    if (!res.ok) throw new Error(`--before-refresh: ${res.status}`);
  }
  const refreshed = await tokenRequest(meta.token_endpoint, { grant_type: 'refresh_token', refresh_token: first.body.refresh_token });
  if (refreshed.status !== 200) throw new Error(`refresh: ${refreshed.status} ${JSON.stringify(refreshed.body)}`);
  const reused = await tokenRequest(meta.token_endpoint, { grant_type: 'refresh_token', refresh_token: first.body.refresh_token });
  // Last: testidp answers a replayed code (or refresh token) by revoking every token of the login.
  const replayedCode = await tokenRequest(meta.token_endpoint, {
    grant_type: 'authorization_code', code: redirected.code, redirect_uri: redirect.url, code_verifier: verifier,
  });

  console.log(JSON.stringify({
    outcome: 'tokens',
    redirect: { iss: redirected.iss, stateMatches: true, hits: redirect.requests.length, pageText: redirected.pageText },
    nonce,
    tokenType: first.body.token_type,
    scope: first.body.scope,
    idToken: verifiedClaims(first.body.id_token, jwks),
    replayedCodeError: replayedCode.body.error ?? null,
    refreshed: {
      idToken: verifiedClaims(refreshed.body.id_token, jwks),
      rotated: Boolean(refreshed.body.refresh_token) && refreshed.body.refresh_token !== first.body.refresh_token,
    },
    reusedRefreshError: reused.body.error ?? null,
  }));
}

await main();
