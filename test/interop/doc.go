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
//
// # Browser tests (OAuth logins)
//
// oauth/browser.mjs drives a real Chromium for tests of OAuth logins. It uses
// playwright-core (pinned in package.json) with Debian's /usr/bin/chromium, since
// playwright's own browser download cannot be fetched here; `make interop-deps`
// installs both. A test's node script imports it:
//
//   - launchBrowser({timeoutMs}) starts Chromium headless (as root: --no-sandbox;
//     nothing that phones home) with a new empty profile and resolves with
//     {context, page, close}; call close() in a finally block.
//   - startRedirectServer({port, path}) listens on 127.0.0.1 (port 0: free) and
//     resolves with {url, requests, close}: the loopback redirect URI of a native
//     client (RFC 8252), answering a small "signed in" page.
//   - waitForRedirect(page, urlPrefix, {timeoutMs}) resolves with {url, code, state,
//     iss, error, errorDescription, params} of the first navigation to urlPrefix,
//     redirects included. Start it before the navigation. It watches requests rather
//     than using page.route, whose handler never sees the target of a 302.
//   - loginAtTestIdP(page, {username, password}) fills internal/testidp's login form
//     and submits it, resolving with {error, url}: error is the form's message when
//     the form came back (wrong password), else null.
//
// oauth/idp-login.mjs is the proof and an example: TestOAuthBrowserLogin starts a
// testidp with a user (testidp.Options.Users) and a client whose redirect URI is the
// script's loopback listener, and the script runs the authorization code flow with
// PKCE through Chromium, redeems the code, refreshes and prints JSON for the test to
// check. Each run starts a Chromium (about 2–3 s here): run browser tests one after
// another. Headless Go tests that need no browser use testidp.Options.AutoLogin.
package interop
