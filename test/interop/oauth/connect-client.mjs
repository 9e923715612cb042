// The TypeScript SDK's stdio client against `mcpgw connect`, the bridge to a gateway whose
// authorization server is on. Run by TestConnectStdioBridge (test/interop/connect_test.go).
//
//   node connect-client.mjs --bin MCPGW --url GATEWAY/notes --token-file F --client-name NAME
//                           --ttl-seconds N --username U --password P
//
// StdioClientTransport starts `MCPGW connect URL` with oauth/connect-login.mjs as its login
// handler (Chromium through the consent page and testidp). Steps:
//   1. connect: the bridge's first POST is answered 401; it discovers, registers, runs the
//      login handler, redeems the code and retries; then tools/list and tools/call.
//   2. refresh: wait past the access token's lifetime (oauth.access_token_ttl); the next call
//      makes the bridge refresh (its clock, or the 401) and succeed.
//   3. revocation: the refresh token, read from the bridge's token file, is revoked at the
//      revocation endpoint; after the access token's lifetime the next call makes the bridge's
//      refresh fail (invalid_grant), so it logs in again through the handler and the call succeeds.
// The token file's bookkeeping (logins, refreshes) is read after each step; the tokens stay here
// (only whether they changed is printed). It prints one JSON object.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string' },
    url: { type: 'string' },
    'token-file': { type: 'string' },
    'client-name': { type: 'string' },
    'ttl-seconds': { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
    // The tool called: the backend's own name on its path, a prefixed one on
    // the federated endpoint.
    tool: { type: 'string', default: 'echo' },
  },
  strict: true,
});
for (const name of ['bin', 'url', 'token-file', 'client-name', 'ttl-seconds', 'username', 'password']) {
  if (!args[name]) throw new Error(`--${name} is required`);
}
const ttlMs = Number(args['ttl-seconds']) * 1000;
const loginScript = join(dirname(fileURLToPath(import.meta.url)), 'connect-login.mjs');
// A browser login on a loaded machine takes tens of seconds: far above the SDK's 60 s default.
const slow = { timeout: 300_000 };

const out = { steps: [] };
let step = 'start';
const mark = (name) => {
  step = name;
  out.steps.push(name);
};
const stderr = [];
const seen = [];
const state = async () => {
  const s = JSON.parse(await readFile(args['token-file'], 'utf8'));
  seen.push(s.access_token, s.refresh_token);
  return s;
};
const book = (s) => ({ logins: s.logins, refreshes: s.refreshes, hasClient: Boolean(s.client_id) });
const errorOf = (err) => ({ name: err?.name ?? null, message: String(err?.message ?? err), code: err?.code ?? null });
const textOf = (r) => r.content?.[0]?.text ?? null;

const transport = new StdioClientTransport({
  command: args.bin,
  args: ['connect', '--token-file', args['token-file'], '--client-name', args['client-name'], args.url],
  env: {
    ...process.env,
    MCP_CONNECT_LOGIN_HANDLER: `${process.execPath} ${loginScript}`,
    CONNECT_LOGIN_USERNAME: args.username,
    CONNECT_LOGIN_PASSWORD: args.password,
  },
  stderr: 'pipe',
});
transport.stderr?.on('data', (chunk) => stderr.push(chunk.toString()));
const client = new Client({ name: 'mcpgw-interop-connect', version: '1.0.0' });
try {
  mark('connect');
  await client.connect(transport, slow);
  out.server = client.getServerVersion() ?? null;
  mark('tools-list');
  out.tools = (await client.listTools(undefined, slow)).tools.map((t) => t.name);
  mark('tools-call');
  const first = await client.callTool({ name: args.tool, arguments: { message: 'through the bridge' } }, undefined, slow);
  out.firstCall = { text: textOf(first), isError: first.isError ?? false };
  const s1 = await state();
  out.afterLogin = book(s1);

  mark('wait-for-expiry');
  await sleep(ttlMs + 1500);
  mark('call-after-expiry');
  const second = await client.callTool({ name: args.tool, arguments: { message: 'after refresh' } }, undefined, slow);
  out.secondCall = { text: textOf(second), isError: second.isError ?? false };
  const s2 = await state();
  out.afterRefresh = { ...book(s2), accessTokenChanged: s2.access_token !== s1.access_token, refreshTokenRotated: s2.refresh_token !== s1.refresh_token };

  mark('revoke');
  const meta = await (await fetch(new URL('/.well-known/oauth-authorization-server', args.url))).json();
  const res = await fetch(meta.revocation_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: s2.refresh_token, token_type_hint: 'refresh_token', client_id: s2.client_id }),
  });
  out.revoke = { status: res.status };
  await sleep(ttlMs + 1500);
  mark('call-after-revoke');
  try {
    const third = await client.callTool({ name: args.tool, arguments: { message: 'after revocation' } }, undefined, slow);
    out.thirdCall = { text: textOf(third), isError: third.isError ?? false };
  } catch (err) {
    out.thirdCall = { error: errorOf(err) };
  }
  const s3 = await state();
  out.afterRevoke = { ...book(s3), sameClient: s3.client_id === s2.client_id, refreshTokenChanged: s3.refresh_token !== s2.refresh_token };
} catch (err) {
  out.fatal = { ...errorOf(err), step, stack: String(err?.stack ?? '') };
} finally {
  await client.close().catch(() => {});
}
out.bridgeLog = stderr.join('');
// Tokens are never logged: none of the ones the token file held appears in the bridge's stderr.
out.tokensInLog = seen.some((t) => t && out.bridgeLog.includes(t));
process.stdout.write(JSON.stringify(out) + '\n');
