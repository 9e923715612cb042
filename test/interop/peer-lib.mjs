// What the TypeScript SDK client scripts of the Go interop tests share: one
// JSON event per stdout line, --header parsing, a tool result's text, and an
// exit status the Go tests read (1, with the HTTP status when the SDK's
// error carries one, on any error).
import { performance } from 'node:perf_hooks';

// emit prints one event; atMs is milliseconds since the process started, so
// a test can tell a notification that arrived while a tool ran from one
// released together with the result.
export function emit(event, fields) {
  process.stdout.write(JSON.stringify({ event, atMs: Math.round(performance.now()), ...fields }) + '\n');
}

export function parseHeader(raw) {
  const colon = raw.indexOf(':');
  if (colon <= 0) throw new Error(`--header ${JSON.stringify(raw)}: want "Name: value"`);
  return [raw.slice(0, colon).trim(), raw.slice(colon + 1).trim()];
}

export function textOf(result, what) {
  const text = result?.content?.find((part) => part.type === 'text')?.text;
  if (typeof text !== 'string') throw new Error(`${what}: no text content in ${JSON.stringify(result)}`);
  if (result.isError) throw new Error(`${what}: tool error: ${text}`);
  return text;
}

// run runs main and exits: 0 when it resolves, 1 when it throws.
export function run(name, main) {
  main().then(
    () => process.exit(0),
    (error) => {
      // The SDK's StreamableHTTPError carries the HTTP status in code.
      const status = typeof error?.code === 'number' ? ` [code ${error.code}]` : '';
      process.stderr.write(`${name}:${status} ${error?.stack ?? error}\n`);
      process.exit(1);
    },
  );
}
