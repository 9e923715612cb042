// A TypeScript SDK client run by the Go interop tests. It prints one JSON object per
// line on stdout (the Go test parses and asserts them) and exits non-zero on any error.
//
//   node ts-client.mjs URL [--header "Name: value"]... [--message TEXT] [--steps N] [--duration SECONDS]
//
// Events: connected, tools, echo, progress (one per notification), result, terminated.
// Each carries atMs, milliseconds since the process started, so the test can tell a
// progress notification that arrived while the tool ran from one that was buffered
// and released together with the result.
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { emit, parseHeader, run, textOf } from './peer-lib.mjs';

const LONG_RUNNING_TOOL = 'trigger-long-running-operation';

function positiveNumber(name, raw) {
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} ${JSON.stringify(raw)}: want a positive number`);
  return value;
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      header: { type: 'string', multiple: true, default: [] },
      message: { type: 'string', default: 'hello from the TypeScript SDK' },
      steps: { type: 'string', default: '4' },
      duration: { type: 'string', default: '2' },
    },
  });
  if (positionals.length !== 1) throw new Error('usage: ts-client.mjs URL [--header "Name: value"]...');
  const url = new URL(positionals[0]);
  const headers = Object.fromEntries(values.header.map(parseHeader));
  const steps = positiveNumber('steps', values.steps);
  const duration = positiveNumber('duration', values.duration);

  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
  const client = new Client({ name: 'mcpgw-interop-ts-client', version: '1.0.0' });
  await client.connect(transport);
  emit('connected', { sessionId: transport.sessionId ?? null, protocolVersion: transport.protocolVersion ?? null });

  const { tools } = await client.listTools();
  emit('tools', { names: tools.map((tool) => tool.name) });

  const echoed = await client.callTool({ name: 'echo', arguments: { message: values.message } });
  emit('echo', { text: textOf(echoed, 'echo') });

  // onprogress makes the SDK attach a progressToken to the request's _meta.
  const result = await client.callTool(
    { name: LONG_RUNNING_TOOL, arguments: { duration, steps } },
    undefined,
    { onprogress: (progress) => emit('progress', { progress: progress.progress, total: progress.total ?? null }) },
  );
  emit('result', { text: textOf(result, LONG_RUNNING_TOOL) });

  if (transport.sessionId) {
    const sessionId = transport.sessionId;
    await transport.terminateSession();
    emit('terminated', { sessionId });
  }
  await client.close();
}

run('ts-client', main);
