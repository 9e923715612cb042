// The official TypeScript SDK's OAuth client, end to end against mcpgw's authorization server,
// with a person approving the consent page and logging in at testidp in a real Chromium. Run by
// TestOAuthTypeScriptSDKClient (test/interop/oauth_sdk_test.go).
//
//   node sdk-client.mjs --mcp-url URL --username U --password P --client-name NAME --ttl-seconds N
//                       [--client-metadata-url URL --redirect-port PORT] [--login-only]
//
// The client knows nothing but the MCP URL. Everything else is the SDK's own doing:
//   1. connect → the gateway answers 401 → the SDK discovers (RFC 9728 protected resource
//      metadata, then RFC 8414 authorization server metadata), registers (RFC 7591) and calls
//      redirectToAuthorization, where this provider drives Chromium: consent page (#approve),
//      testidp login, capture of the code at the loopback redirect URI. connect rejects with
//      UnauthorizedError.
//   2. transport.finishAuth(code) → the SDK redeems the code (PKCE); a new transport connects
//      and lists tools.
//   3. refresh: the SDK 1.32.2 keeps no clock of its own (expires_in is stored, never read):
//      it refreshes when a request is answered 401. The Go test sets a short
//      oauth.access_token_ttl; this script waits past it, and the next request is refused,
//      refreshed (grant_type=refresh_token) and retried by the SDK itself.
//   4. revocation (RFC 7009) of the refresh token at the revocation endpoint the metadata
//      names; the next request is refused, the SDK's refresh is refused too (invalid_grant), it
//      drops the tokens and asks for a new authorization, which this provider records without
//      opening the browser, and the call rejects with UnauthorizedError.
//
// Every HTTP request the SDK makes goes through a recording fetch. The script prints one JSON
// object: {steps: [...], requests: [...], ...}. It exits non-zero only when it cannot run at all.
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { launchBrowser, loginAtTestIdP, startRedirectServer, waitForRedirect } from './browser.mjs';

const { values: args } = parseArgs({
  options: {
    'mcp-url': { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
    'client-name': { type: 'string' },
    'ttl-seconds': { type: 'string' },
    // A Client ID Metadata Document URL (SEP-991): the SDK then uses it as client_id and does
    // not register. The document must list http://127.0.0.1:PORT/callback, PORT given here.
    'client-metadata-url': { type: 'string' },
    'redirect-port': { type: 'string', default: '0' },
    // Stop after tools/list: no expiry, refresh or revocation.
    'login-only': { type: 'boolean', default: false },
  },
  strict: true,
});
for (const name of ['mcp-url', 'username', 'password', 'client-name', 'ttl-seconds']) {
  if (!args[name]) throw new Error(`--${name} is required`);
}
const mcpURL = new URL(args['mcp-url']);
const ttlMs = Number(args['ttl-seconds']) * 1000;

// A short, stable fingerprint of a token: the Go test compares them; the tokens stay here.
const fp = (s) => (s ? createHash('sha256').update(s).digest('base64url').slice(0, 16) : null);

const out = { steps: [], requests: [], redirects: [], tokensSaved: [] };
let step = 'start';
const mark = (name, details = {}) => {
  step = name;
  out.steps.push({ step: name, atMs: Date.now(), ...details });
};
const errorOf = (err) => ({
  name: err?.constructor?.name ?? typeof err,
  message: String(err?.message ?? err),
  code: err?.code ?? null,
  unauthorized: err instanceof UnauthorizedError,
});

// recordingFetch records every request the SDK sends (discovery, registration, token, MCP).
async function recordingFetch(input, init = {}) {
  const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
  const method = init.method ?? (input instanceof Request ? input.method : 'GET');
  const entry = { step, method, path: url.pathname, host: url.host };
  if (init.body instanceof URLSearchParams) {
    entry.grantType = init.body.get('grant_type');
    entry.resource = init.body.get('resource');
  } else if (typeof init.body === 'string' && init.body.startsWith('{')) {
    try {
      const body = JSON.parse(init.body);
      entry.rpc = body.method ?? null;
      if (url.pathname.endsWith('/register')) entry.clientName = body.client_name ?? null;
    } catch {
      // not JSON: nothing to note
    }
  }
  const res = await fetch(input, init);
  entry.status = res.status;
  if (res.status === 401) entry.wwwAuthenticate = res.headers.get('www-authenticate');
  if (!res.ok && (url.pathname.endsWith('/token') || url.pathname.endsWith('/register'))) {
    entry.error = await res.clone().json().then((b) => b.error ?? null, () => null);
  }
  out.requests.push(entry);
  return res;
}

const redirect = await startRedirectServer({ port: Number(args['redirect-port']), path: '/callback' });
let browser = null;

// The OAuthClientProvider of a native client (RFC 8252): everything kept in memory, the
// redirect URI on a loopback listener, the person in a real browser.
class BrowserProvider {
  constructor() {
    this._tokens = undefined;
    this._client = undefined;
    this._verifier = undefined;
    this._discovery = undefined;
    this.code = null;
    this.interactive = true; // false after revocation: record, do not open the browser
    this.invalidated = [];
  }
  get redirectUrl() { return redirect.url; }
  get clientMetadataUrl() { return args['client-metadata-url']; }
  // A fresh state per authorization request, checked when the code comes back.
  state() {
    this._state = randomBytes(16).toString('base64url');
    return this._state;
  }
  get clientMetadata() {
    return {
      client_name: args['client-name'],
      redirect_uris: [redirect.url],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return this._tokens; }
  saveTokens(tokens) {
    this._tokens = tokens;
    this.savedAt = Date.now();
    out.tokensSaved.push({ step, accessToken: fp(tokens.access_token), refreshToken: fp(tokens.refresh_token),
      expiresIn: tokens.expires_in ?? null, tokenType: tokens.token_type, scope: tokens.scope ?? null });
  }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
  saveDiscoveryState(state) { this._discovery = state; }
  discoveryState() { return this._discovery; }
  invalidateCredentials(scope) {
    this.invalidated.push({ step, scope });
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'client') this._client = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this._discovery = undefined;
  }
  async redirectToAuthorization(authorizationUrl) {
    const u = new URL(authorizationUrl);
    const q = Object.fromEntries(u.searchParams);
    const entry = { step, endpoint: u.origin + u.pathname, clientId: q.client_id, redirectUri: q.redirect_uri,
      resource: q.resource ?? null, scope: q.scope ?? null, codeChallengeMethod: q.code_challenge_method ?? null,
      hasState: Boolean(q.state), browserOpened: false };
    out.redirects.push(entry);
    if (!this.interactive) return;
    entry.browserOpened = true;
    browser = browser ?? (await launchBrowser({ timeoutMs: 60_000 }));
    const { page } = browser;
    const back = waitForRedirect(page, redirect.url, { timeoutMs: 120_000 });
    back.catch(() => {}); // awaited below; a failure before that must not become an unhandled rejection
    await page.goto(u.href);
    // The gateway's consent page, then testidp's login form.
    await page.waitForSelector('#approve');
    entry.consentClientName = (await page.textContent('#client-name'))?.trim() ?? null;
    entry.consentAgent = (await page.textContent('#agent code'))?.trim() ?? null;
    await page.click('#approve');
    const login = await loginAtTestIdP(page, { username: args.username, password: args.password });
    if (login.error) throw new Error(`testidp refused the login: ${login.error}`);
    const got = await back;
    entry.returned = { code: Boolean(got.code), stateMatches: Boolean(q.state) && got.state === this._state && q.state === this._state,
      iss: got.iss, error: got.error };
    this.code = got.code;
  }
}

// Done ends a --login-only run early.
class Done extends Error {}

const provider = new BrowserProvider();
const connect = async () => {
  const transport = new StreamableHTTPClientTransport(mcpURL, { authProvider: provider, fetch: recordingFetch });
  const client = new Client({ name: 'mcpgw-interop-oauth', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
};

let session = null;
try {
  // 1. No token yet: the 401 starts discovery, registration and the browser login.
  mark('connect-unauthenticated');
  let firstTransport = null;
  try {
    firstTransport = new StreamableHTTPClientTransport(mcpURL, { authProvider: provider, fetch: recordingFetch });
    const client = new Client({ name: 'mcpgw-interop-oauth', version: '1.0.0' });
    await client.connect(firstTransport);
    out.firstConnect = { error: null };
  } catch (err) {
    out.firstConnect = { error: errorOf(err) };
  }
  out.clientId = provider.clientInformation()?.client_id ?? null;
  out.discovery = {
    authorizationServer: provider._discovery?.authorizationServerUrl ?? null,
    resource: provider._discovery?.resourceMetadata?.resource ?? null,
    registrationEndpoint: provider._discovery?.authorizationServerMetadata?.registration_endpoint ?? null,
    revocationEndpoint: provider._discovery?.authorizationServerMetadata?.revocation_endpoint ?? null,
  };

  // 2. The code back from the browser: the SDK redeems it, then a new connection works.
  mark('finish-auth');
  if (!provider.code) throw new Error('no authorization code came back to the redirect URI');
  await firstTransport.finishAuth(provider.code);
  mark('connect-authorized');
  session = await connect();
  mark('tools-list');
  const listed = await session.client.listTools();
  out.tools = listed.tools.map((t) => t.name);
  const before = provider.tokens();
  out.firstAccessToken = fp(before?.access_token);
  out.firstRefreshToken = fp(before?.refresh_token);
  if (args['login-only']) throw new Done();

  // 3. Let the access token expire; the SDK refreshes on the 401 and retries.
  mark('wait-for-expiry', { waitMs: ttlMs + 1500 });
  await sleep(Math.max(0, provider.savedAt + ttlMs + 1500 - Date.now()));
  mark('call-after-expiry');
  try {
    const echoed = await session.client.callTool({ name: 'echo', arguments: { message: 'after refresh' } });
    out.afterExpiry = { error: null, text: echoed.content?.[0]?.text ?? null, isError: echoed.isError ?? false };
  } catch (err) {
    out.afterExpiry = { error: errorOf(err) };
  }
  const after = provider.tokens();
  out.refreshedAccessToken = fp(after?.access_token);
  out.refreshedRefreshToken = fp(after?.refresh_token);

  // 4. The client revokes its refresh token (RFC 7009) at the endpoint the metadata names.
  mark('revoke');
  const revocation = out.discovery.revocationEndpoint;
  if (!revocation) throw new Error('the authorization server metadata names no revocation_endpoint');
  const res = await fetch(revocation, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: after.refresh_token, token_type_hint: 'refresh_token', client_id: out.clientId }),
  });
  out.revoke = { status: res.status };
  provider.interactive = false;
  mark('call-after-revoke');
  try {
    await session.client.listTools();
    out.afterRevoke = { error: null };
  } catch (err) {
    out.afterRevoke = { error: errorOf(err) };
  }
  out.invalidated = provider.invalidated;
} catch (err) {
  if (!(err instanceof Done)) out.fatal = { ...errorOf(err), step, stack: String(err?.stack ?? '') };
} finally {
  await session?.client.close().catch(() => {});
  await browser?.close();
  await redirect.close();
}
out.redirectHits = redirect.requests.length;
process.stdout.write(JSON.stringify(out) + '\n');
