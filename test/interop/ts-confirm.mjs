// The TypeScript SDK client answering the gateway's confirmation question
// (MCP elicitation) for a call the policy wants the person to confirm.
//
//   node ts-confirm.mjs URL --header "Name: value"... --answer accept|decline|none --tool NAME --args JSON
//
// --answer none declares no elicitation capability. Prints one JSON object:
// {questions: [message...], result?: CallToolResult, error?: string}.
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    header: { type: 'string', multiple: true, default: [] },
    answer: { type: 'string', default: 'accept' },
    tool: { type: 'string' },
    args: { type: 'string', default: '{}' },
  },
});
const headers = Object.fromEntries(values.header.map((h) => {
  const i = h.indexOf(':');
  return [h.slice(0, i).trim(), h.slice(i + 1).trim()];
}));
const out = { questions: [] };
const capabilities = values.answer === 'none' ? {} : { elicitation: {} };
const client = new Client({ name: 'mcpgw-interop-confirm', version: '1.0.0' }, { capabilities });
if (values.answer !== 'none') {
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    out.questions.push(request.params.message);
    return { action: values.answer };
  });
}
const transport = new StreamableHTTPClientTransport(new URL(positionals[0]), { requestInit: { headers } });
try {
  await client.connect(transport);
  out.result = await client.callTool({ name: values.tool, arguments: JSON.parse(values.args) });
} catch (err) {
  out.error = String(err?.message ?? err);
} finally {
  await client.close().catch(() => {});
}
process.stdout.write(JSON.stringify(out) + '\n');
