// Package interop holds mcpgw's interoperability tests against real MCP peers: the
// official conformance suite (@modelcontextprotocol/conformance) run against the Go
// SDK's conformance server, and the TypeScript SDK client and inspector-cli against
// @modelcontextprotocol/server-everything, each directly and through a running
// mcpgw. TestDifferential sends hostile JSON-RPC (case-variant, folded and
// duplicate keys, numbers out of range, bad encodings, batches, dot-segment
// paths) through an in-process gateway to four real backends (server-everything,
// the official Go SDK, mcp-go and a node:http recorder) and compares each
// backend's own record of what it executed with what the policy decided. The
// Node peers come from the pinned package-lock.json in this folder (run `npm ci`
// here first); the Go peers are modules pinned in the module's go.mod.
package interop
