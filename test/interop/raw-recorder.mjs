// A minimal MCP server on node:http alone, for the differential tests
// (differential_test.go). It reads every POST body with JSON.parse, exactly as
// a hand-written JavaScript MCP server would, and writes what it read to a
// JSONL record: so the record is JavaScript's reading of the bytes the gateway
// forwarded, not the gateway's. It logs every HTTP request (method and raw
// path) too, so a test can prove that a refused request never reached it.
//
// The first path segment picks how list results are framed, so the gateway's
// filtering can be checked in each: /json, /json-seq (plain JSON body),
// /json-seq-rs (RFC 7464 record separators), /vnd-json (a +json media type),
// /sse-lf, /sse-crlf, /sse-lonecr. Every other answer is plain JSON.
//
// Environment: PORT (listens on 127.0.0.1 only), MCPGW_DIFF_RECORD (the JSONL file).
import http from 'node:http';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';

const port = Number(process.env.PORT);
const recordPath = process.env.MCPGW_DIFF_RECORD;
if (!port || !recordPath) {
  console.error('PORT and MCPGW_DIFF_RECORD are required');
  process.exit(2);
}

// JSON.stringify writes Infinity and NaN as null, which would hide that
// JavaScript read 1e400 as Infinity: keep them visible in the record.
function replacer(_key, value) {
  if (typeof value === 'number' && !Number.isFinite(value)) return { nonFinite: String(value) };
  return value;
}

// Synchronous appends: a line is on disk before the reply is sent, so the
// test reads a complete record once the gateway has answered.
function record(entry) {
  fs.appendFileSync(recordPath, JSON.stringify(entry, replacer) + '\n');
}

const tools = [
  { name: 'echo', description: 'Echoes the message', inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] } },
  { name: 'read_file', description: 'Reads a file', inputSchema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] } },
  { name: 'get_secret', description: 'Returns the secret', inputSchema: { type: 'object', properties: {} } },
];
const resources = [
  { uri: 'file:///public/readme', name: 'readme', mimeType: 'text/plain' },
  { uri: 'file:///private/secret', name: 'secret', mimeType: 'text/plain' },
];
const prompts = [
  { name: 'greeting', description: 'Greets someone', arguments: [{ name: 'who' }] },
  { name: 'admin_prompt', description: 'Administrators only', arguments: [] },
];

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// execution is what a server would run for m, as JavaScript read it, or
// undefined when it would run nothing (unknown tool, resource or prompt).
function execution(m) {
  const p = isObject(m.params) ? m.params : {};
  switch (m.method) {
    case 'tools/call':
      if (tools.some((t) => t.name === p.name)) return { kind: 'tool', name: p.name, arguments: p.arguments ?? null };
      return undefined;
    case 'resources/read':
      if (resources.some((r) => r.uri === p.uri)) return { kind: 'resource', uri: p.uri };
      return undefined;
    case 'prompts/get':
      if (prompts.some((q) => q.name === p.name)) return { kind: 'prompt', name: p.name, arguments: p.arguments ?? null };
      return undefined;
  }
  return undefined;
}

function result(id, value) {
  return { jsonrpc: '2.0', id, result: value };
}

function error(id, code, message) {
  return { jsonrpc: '2.0', id, error: { code, message } };
}

// answer is the reply to request m (it has an id); listed reports a list result.
function answer(m) {
  const p = isObject(m.params) ? m.params : {};
  const exec = execution(m);
  switch (m.method) {
    case 'initialize':
      return result(m.id, {
        protocolVersion: typeof p.protocolVersion === 'string' ? p.protocolVersion : '2025-06-18',
        capabilities: { tools: {}, resources: {}, prompts: {} },
        serverInfo: { name: 'raw-recorder', version: '1.0.0' },
      });
    case 'ping':
      return result(m.id, {});
    case 'tools/list':
      return result(m.id, { tools });
    case 'resources/list':
      return result(m.id, { resources });
    case 'prompts/list':
      return result(m.id, { prompts });
    case 'tools/call':
      if (!exec) return error(m.id, -32602, 'unknown tool');
      return result(m.id, { content: [{ type: 'text', text: JSON.stringify({ name: exec.name, arguments: exec.arguments }, replacer) }] });
    case 'resources/read':
      if (!exec) return error(m.id, -32002, 'resource not found');
      return result(m.id, { contents: [{ uri: exec.uri, mimeType: 'text/plain', text: 'contents of ' + exec.uri }] });
    case 'prompts/get':
      if (!exec) return error(m.id, -32602, 'unknown prompt');
      return result(m.id, { messages: [{ role: 'user', content: { type: 'text', text: 'prompt ' + exec.name } }] });
  }
  return error(m.id, -32601, 'method not found');
}

const listMethods = new Set(['tools/list', 'resources/list', 'prompts/list']);

// send writes payload in the framing the mode asks for; only list results
// are framed by mode, so that sessions open the same way on every path.
function send(res, mode, payload, isList, headers) {
  const text = JSON.stringify(payload);
  const framing = isList ? mode : 'json';
  const sse = (eol) => {
    res.writeHead(200, { ...headers, 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.end(`event: message${eol}id: ${randomUUID()}${eol}data: ${text}${eol}${eol}`);
  };
  switch (framing) {
    case 'json-seq':
      res.writeHead(200, { ...headers, 'Content-Type': 'application/json-seq' });
      return res.end(text);
    case 'json-seq-rs':
      res.writeHead(200, { ...headers, 'Content-Type': 'application/json-seq' });
      return res.end('\x1e' + text + '\n');
    case 'vnd-json':
      res.writeHead(200, { ...headers, 'Content-Type': 'application/vnd.mcpgw-test+json; charset=utf-8' });
      return res.end(text);
    case 'sse-lf':
      return sse('\n');
    case 'sse-crlf':
      return sse('\r\n');
    case 'sse-lonecr':
      return sse('\r');
  }
  res.writeHead(200, { ...headers, 'Content-Type': 'application/json' });
  return res.end(text);
}

function handlePost(req, res, body) {
  const mode = (req.url.split('/')[1] || 'json').split('?')[0];
  let parsed;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (e) {
    record({ type: 'parse-error', error: String(e) });
    res.writeHead(400, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify(error(null, -32700, 'parse error')));
  }
  record({ type: 'parsed', body: parsed });
  const batch = Array.isArray(parsed);
  const msgs = batch ? parsed : [parsed];
  const replies = [];
  let isList = false;
  let initialized = false;
  for (const m of msgs) {
    if (!isObject(m) || typeof m.method !== 'string') continue; // a response, or junk
    const exec = execution(m);
    if (exec) record({ type: 'exec', ...exec });
    if (m.id === undefined) continue; // a notification
    if (listMethods.has(m.method)) isList = true;
    if (m.method === 'initialize') initialized = true;
    replies.push(answer(m));
  }
  if (replies.length === 0) {
    res.writeHead(202);
    return res.end();
  }
  const headers = initialized ? { 'Mcp-Session-Id': randomUUID() } : {};
  return send(res, mode, batch ? replies : replies[0], isList, headers);
}

let seq = 0;
const server = http.createServer((req, res) => {
  const n = ++seq;
  record({ type: 'http', phase: 'start', seq: n, method: req.method, path: req.url });
  res.on('finish', () => record({ type: 'http', phase: 'end', seq: n }));
  res.on('close', () => {
    if (!res.writableFinished) record({ type: 'http', phase: 'end', seq: n });
  });
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    switch (req.method) {
      case 'POST':
        return handlePost(req, res, Buffer.concat(chunks));
      case 'DELETE':
        res.writeHead(200);
        return res.end();
      default:
        // No server-initiated stream: a GET is answered at once, so it is
        // never left in flight.
        res.writeHead(405, { Allow: 'POST, DELETE' });
        return res.end();
    }
  });
});
server.listen(port, '127.0.0.1', () => console.log(`raw recorder listening on 127.0.0.1:${port}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
