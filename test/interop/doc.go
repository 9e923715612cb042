// Package interop holds mcpgw's interoperability tests against real MCP peers: the
// official conformance suite (@modelcontextprotocol/conformance) run against the Go
// SDK's conformance server, and the TypeScript SDK client and inspector-cli against
// @modelcontextprotocol/server-everything, each directly and through a running
// mcpgw. The Node peers come from the pinned package-lock.json in this folder
// (run `npm ci` here first); the Go peer is a tool pinned in the module's go.mod.
package interop
