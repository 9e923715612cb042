package interop

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDirectConformance runs the conformance suite against the Go SDK's
// conformance server with nothing in between: the baseline the gateway is
// measured against in TestThroughGateway.
func TestDirectConformance(t *testing.T) {
	p := findPeers(t)
	endpoint := startConformanceServer(t, p.buildGo(t, conformanceServerPkg, "everything-server"))

	report := p.runConformance(t, "direct", endpoint)

	if got, want := report.passing(), activeServerScenarios(); !slices.Equal(got, want) {
		t.Errorf("scenarios passing directly:\n got %v\nwant %v", got, want)
	}
	if report.Passed != activeSuiteChecks || report.Failed != 0 {
		t.Errorf("direct run: %q, want %d passed, 0 failed", report.Summary, activeSuiteChecks)
	}
	t.Logf("scenarios passing directly (%d): %s", len(report.passing()), strings.Join(report.passing(), " "))

	// The proxy TestThroughGateway puts in front of the gateway must change
	// nothing by itself, so that any scenario lost there is the gateway's.
	headers := map[string]string{"Authorization": "Bearer not-checked-here", "X-Agent-ID": "interop"}
	proxied := p.runConformance(t, "through the header proxy alone", startHeaderProxy(t, endpoint, headers)+"/mcp")
	if got, want := proxied.passing(), report.passing(); !slices.Equal(got, want) {
		t.Errorf("scenarios passing through the header proxy alone:\n got %v\nwant %v", got, want)
	}
}

// TestDirectServerEverything runs the TypeScript SDK client and inspector-cli
// against server-everything with nothing in between, proving the clients and
// the assertions before they are pointed at the gateway. server-everything
// ignores the headers.
func TestDirectServerEverything(t *testing.T) {
	p := findPeers(t)
	endpoint := p.startServerEverything(t)
	headers := map[string]string{"Authorization": "Bearer not-checked-here", "X-Agent-ID": "interop"}

	t.Run("listens on loopback only", func(t *testing.T) {
		assertLoopbackOnly(t, endpoint)
	})
	t.Run("ts-sdk client", func(t *testing.T) {
		const message = "hello from the TypeScript SDK"
		assertTSClientSession(t, p.runTSClient(t, endpoint, message, headers), message)
	})
	t.Run("ts-sdk client check catches a buffered stream", func(t *testing.T) {
		// The same session through a proxy that holds each POST's SSE response
		// until it is complete, as a buffering gateway would.
		const message = "through a buffering proxy"
		got := p.runTSClient(t, startBufferingProxy(t, endpoint), message, headers)
		if got.err != nil {
			t.Fatalf("%v\nstderr:\n%s", got.err, got.stderr)
		}
		problems := tsClientProblems(got.events, message)
		if len(problems) != 1 || !strings.Contains(problems[0], "the stream was buffered") {
			t.Fatalf("problems = %q, want only the buffered stream\nevents:\n%s", problems, describeEvents(got.events))
		}
	})
	t.Run("inspector-cli tools/list", func(t *testing.T) {
		assertInspectorToolsList(t, p.runInspector(t, endpoint, headers, "--method", "tools/list"))
	})
	t.Run("inspector-cli tools/call echo", func(t *testing.T) {
		const message = "hello-from-inspector"
		assertInspectorEcho(t, p.runInspector(t, endpoint, headers, inspectorEchoArgs(message)...), message)
	})
}

// startBufferingProxy serves a reverse proxy to target's host that reads every
// POST's event stream to its end before passing it on, and returns target's URL
// through it.
func startBufferingProxy(t *testing.T, target string) string {
	t.Helper()
	upstream, err := url.Parse(target)
	if err != nil {
		t.Fatalf("parse %s: %v", target, err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: upstream.Scheme, Host: upstream.Host}) },
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method != http.MethodPost || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				return nil
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			return err
		},
		ErrorHandler: proxyError,
	}
	return serveLoopback(t, fullDuplex(proxy)) + upstream.Path
}

// assertLoopbackOnly checks that the server behind endpoint cannot be reached on
// any of this machine's non-loopback addresses.
func assertLoopbackOnly(t *testing.T, endpoint string) {
	t.Helper()
	parsed, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("parse %s: %v", endpoint, err)
	}
	port := parsed.Port()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatalf("interface addresses: %v", err)
	}
	for _, addr := range addrs {
		ipNet, ok := addr.(*net.IPNet)
		if !ok || ipNet.IP.IsLoopback() || ipNet.IP.IsLinkLocalUnicast() {
			continue
		}
		target := net.JoinHostPort(ipNet.IP.String(), port)
		if conn, err := net.DialTimeout("tcp", target, time.Second); err == nil {
			conn.Close()
			t.Errorf("server is reachable on %s, not only on loopback", target)
		}
	}
}

// TestBindLoopbackPreload checks bind-loopback.cjs against each form of
// net.Server.listen a peer may use: every TCP listen ends on 127.0.0.1, a pipe
// path is left alone.
func TestBindLoopbackPreload(t *testing.T) {
	p := findPeers(t)
	// Listens with the JSON-decoded arguments (plus a callback when asked), then
	// prints server.address() and closes.
	const script = `
const net = require('node:net');
const [argsJSON, withCallback] = process.argv.slice(1);
const server = net.createServer();
const report = () => { console.log(JSON.stringify(server.address())); server.close(); };
server.on('error', (err) => { console.error(err.message); process.exit(1); });
if (withCallback === 'callback') server.listen(...JSON.parse(argsJSON), report);
else { server.once('listening', report); server.listen(...JSON.parse(argsJSON)); }
`
	pipe := t.TempDir() + "/peer.sock"
	tests := []struct {
		name     string
		args     []any
		callback bool
		wantPipe bool
	}{
		{name: "port only (express app.listen)", args: []any{0}, callback: true},
		{name: "port as a string (PORT env)", args: []any{"0"}, callback: true},
		{name: "no arguments", args: []any{}},
		{name: "every IPv4 interface asked", args: []any{0, "0.0.0.0"}, callback: true},
		{name: "every IPv6 interface asked", args: []any{0, "::"}},
		{name: "port and backlog", args: []any{0, 16}, callback: true},
		{name: "options object", args: []any{map[string]any{"port": 0}}, callback: true},
		{name: "options object with a host", args: []any{map[string]any{"port": 0, "host": "0.0.0.0"}}},
		{name: "pipe path", args: []any{pipe}, callback: true, wantPipe: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argsJSON, err := json.Marshal(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			mode := "event"
			if tt.callback {
				mode = "callback"
			}
			ctx := t.Context()
			res := run(ctx, "node listen", command(ctx, t.TempDir(), peerEnv(t), p.node,
				"--require", p.path(bindLoopbackPreload), "-e", script, string(argsJSON), mode))
			if res.err != nil {
				t.Fatalf("%v\n%s", res.err, res.stderr)
			}
			if tt.wantPipe {
				var got string
				if err := json.Unmarshal(res.stdout, &got); err != nil || got != pipe {
					t.Fatalf("address = %s, want the pipe %q", res.stdout, pipe)
				}
				return
			}
			var got struct {
				Address string `json:"address"`
				Port    int    `json:"port"`
			}
			if err := json.Unmarshal(res.stdout, &got); err != nil {
				t.Fatalf("address %q: %v", res.stdout, err)
			}
			if got.Address != "127.0.0.1" || got.Port == 0 {
				t.Errorf("listen(%s) bound %s:%s, want 127.0.0.1 and a port", argsJSON, got.Address, strconv.Itoa(got.Port))
			}
		})
	}
}
