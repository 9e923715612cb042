// A TypeScript SDK client on mcpgw's federated endpoint, run by the Go interop
// tests: one session reaching two backends (server-everything behind the prefix
// "everything__", the Go SDK conformance server unprefixed). It prints one JSON
// object per line on stdout and exits non-zero on any error.
//
//   node ts-federated.mjs URL [--header "Name: value"]...
//
// Events: connected, tools, resources, read, call (one per tool call, with its
// text), progress, logging and tools_changed (one per notification, with the
// backend it names when it names one), sampling (one per server request
// answered), terminated.
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { emit, parseHeader, run, textOf } from './peer-lib.mjs';

// waitFor resolves when pred() holds, checking on every notification; the Go
// test bounds the whole run, so there is no clock here.
const waiters = [];
function notify() {
  for (const w of waiters.splice(0)) {
    if (w.pred()) w.resolve();
    else waiters.push(w);
  }
}
function waitFor(pred) {
  if (pred()) return Promise.resolve();
  return new Promise((resolve) => waiters.push({ pred, resolve }));
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { header: { type: 'string', multiple: true, default: [] } },
  });
  if (positionals.length !== 1) throw new Error('usage: ts-federated.mjs URL [--header "Name: value"]...');
  const headers = Object.fromEntries(values.header.map(parseHeader));

  const client = new Client(
    { name: 'mcpgw-interop-ts-federated', version: '1.0.0' },
    { capabilities: { sampling: {} } },
  );
  const seen = { logging: [], toolsChanged: 0 };
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
    const prompt = request.params.messages.map((m) => m.content?.text ?? '').join(' ');
    emit('sampling', { prompt });
    return { model: 'interop-model', role: 'assistant', content: { type: 'text', text: `sampled(${prompt})` } };
  });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    seen.logging.push(String(n.params.data));
    emit('logging', { level: n.params.level, data: String(n.params.data) });
    notify();
  });
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    seen.toolsChanged++;
    emit('tools_changed', {});
    notify();
  });

  const transport = new StreamableHTTPClientTransport(new URL(positionals[0]), { requestInit: { headers } });
  await client.connect(transport);
  emit('connected', { sessionId: transport.sessionId ?? null, capabilities: client.getServerCapabilities() });
  await client.setLoggingLevel('debug');

  const { tools } = await client.listTools();
  emit('tools', { names: tools.map((tool) => tool.name) });
  const { resources } = await client.listResources();
  emit('resources', { uris: resources.map((r) => r.uri) });
  const staticText = resources.find((r) => r.uri === 'test://static-text');
  if (staticText) {
    const read = await client.readResource({ uri: staticText.uri });
    emit('read', { uri: read.contents[0]?.uri, text: read.contents[0]?.text ?? null });
  }

  const call = async (name, args, options) => {
    const result = await client.callTool({ name, arguments: args }, undefined, options);
    emit('call', { name, text: textOf(result, name) });
  };
  // A call to each backend, one with progress from the first, one with
  // logging from the second, a sampling request from each.
  await call('everything__echo', { message: 'federated hello' });
  await call('test_simple_text', {});
  await call('everything__trigger-long-running-operation', { duration: 1, steps: 2 }, {
    onprogress: (p) => emit('progress', { progress: p.progress, total: p.total ?? null }),
  });
  await call('test_tool_with_logging', {});
  await call('everything__trigger-sampling-request', { prompt: 'from everything' });
  await call('test_sampling', { prompt: 'from conformance' });

  // Notifications on the GET stream: server-everything logs at once and
  // every 5 s once toggled; the conformance server announces a changed list.
  await call('everything__toggle-simulated-logging', {});
  await waitFor(() => seen.logging.some((d) => /-level message|level-message/.test(d)));
  await call('test_trigger_tool_change', {});
  await waitFor(() => seen.toolsChanged > 0);
  await call('everything__toggle-simulated-logging', {});

  const sessionId = transport.sessionId;
  await transport.terminateSession();
  emit('terminated', { sessionId });
  await client.close();
}

run('ts-federated', main);
