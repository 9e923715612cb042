// What a browser-based MCP client (the MCP Inspector's web UI, a web app) can do with the
// gateway from its own origin, in a real Chromium: each fetch of the OAuth flow a browser
// client makes, from a page of each origin given. Run by TestOAuthBrowserClientCORS.
//
//   node cors-probe.mjs --gateway URL --page NAME=URL [--page NAME=URL ...]
//
// Each page is served by the Go test (an empty document on its own loopback origin). For each
// it prints what the page's script could read: {status, ...} or {blocked: message} when the
// browser refused (no CORS permission). One JSON object: {NAME: {step: result}}.
import { parseArgs } from 'node:util';
import { launchBrowser } from './browser.mjs';

const { values: args } = parseArgs({
  options: {
    gateway: { type: 'string' },
    page: { type: 'string', multiple: true },
  },
  strict: true,
});
if (!args.gateway || !args.page?.length) throw new Error('--gateway and --page are required');

const out = {};
const browser = await launchBrowser({ timeoutMs: 60_000 });
try {
  for (const spec of args.page) {
    const [name, url] = [spec.slice(0, spec.indexOf('=')), spec.slice(spec.indexOf('=') + 1)];
    await browser.page.goto(url);
    out[name] = await browser.page.evaluate(probe, args.gateway.replace(/\/$/, ''));
  }
} catch (err) {
  out.fatal = { message: String(err?.message ?? err), stack: String(err?.stack ?? '') };
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');

// probe runs in the page: the requests of a browser client's OAuth flow, in order.
async function probe(gateway) {
  const result = {};
  const attempt = async (name, fn) => {
    try {
      result[name] = await fn();
    } catch (err) {
      result[name] = { blocked: String(err?.message ?? err) };
    }
  };
  const json = async (res) => res.json().catch(() => null);
  await attempt('mcp', async () => {
    const res = await fetch(`${gateway}/notes`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'browser', version: '1' } } }),
    });
    return { status: res.status, wwwAuthenticate: res.headers.get('www-authenticate') };
  });
  await attempt('protectedResource', async () => {
    const res = await fetch(`${gateway}/.well-known/oauth-protected-resource/notes`);
    const body = await json(res);
    return { status: res.status, resource: body?.resource ?? null, authorizationServers: body?.authorization_servers ?? null };
  });
  await attempt('metadata', async () => {
    const res = await fetch(`${gateway}/.well-known/oauth-authorization-server`);
    const body = await json(res);
    return { status: res.status, issuer: body?.issuer ?? null };
  });
  let clientID = 'mcpgw-unknown';
  await attempt('register', async () => {
    const res = await fetch(`${gateway}/oauth2/register`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ client_name: 'mcpgw interop browser client', redirect_uris: [`${location.origin}/callback`],
        token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] }),
    });
    const body = await json(res);
    clientID = body?.client_id ?? clientID;
    return { status: res.status, clientID: body?.client_id ?? null, error: body?.error ?? null };
  });
  await attempt('token', async () => {
    const res = await fetch(`${gateway}/oauth2/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'authorization_code', code: 'not-a-code', client_id: clientID,
        redirect_uri: `${location.origin}/callback`, code_verifier: 'v'.repeat(43) }),
    });
    const body = await json(res);
    return { status: res.status, error: body?.error ?? null };
  });
  await attempt('revoke', async () => {
    const res = await fetch(`${gateway}/oauth2/revoke`, {
      method: 'POST',
      body: new URLSearchParams({ token: 'not-a-token', client_id: clientID }),
    });
    return { status: res.status };
  });
  return result;
}
