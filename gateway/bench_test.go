package gateway

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/policy"
)

// BenchmarkRelayToolsCall measures one tools/call through the gateway
// (verified-token cache hit, one policy decision, relay) against the same
// call made directly to the backend, on one connection.
func BenchmarkRelayToolsCall(b *testing.B) {
	h := newHarness(b, harnessOptions{authorizer: benchEngine(b)})
	tok := h.token("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client")
	body := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"bench"}}}`
	var sendBody func(b *testing.B, url string, headers map[string]string, body string)
	sid := h.openSession("/notes", tok, "claude-code")
	send := func(b *testing.B, url string, headers map[string]string) {
		sendBody(b, url, headers, body)
	}
	sendBody = func(b *testing.B, url string, headers map[string]string, body string) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := benchClient.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		_, _ = readAllLimit(resp.Body, 1<<20)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Errorf("status %d", resp.StatusCode)
		}
	}
	b.Run("gateway", func(b *testing.B) {
		hdr := map[string]string{"Authorization": "Bearer " + tok, "X-Agent-ID": "claude-code", "Mcp-Session-Id": sid}
		for b.Loop() {
			send(b, h.url+"/notes", hdr)
		}
	})
	// Distinct arguments defeat the decision cache here: the shipped
	// policy's path rule reads the arguments of every tool on the notes
	// backend, so every call is a full policy evaluation. (A decision that
	// does not read them is remembered whatever they are:
	// policy.BenchmarkDecideFreshArguments.)
	b.Run("gateway-uncached-decision", func(b *testing.B) {
		hdr := map[string]string{"Authorization": "Bearer " + tok, "X-Agent-ID": "claude-code", "Mcp-Session-Id": sid}
		i := 0
		for b.Loop() {
			i++
			sendBody(b, h.url+"/notes", hdr, fmt.Sprintf(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"bench %d"}}}`, i))
		}
	})
	b.Run("direct", func(b *testing.B) {
		direct := directSession(b, h.notes.URL)
		for b.Loop() {
			send(b, h.notes.URL, map[string]string{"Mcp-Session-Id": direct})
		}
	})
	// Throughput with 16 concurrent callers (ns/op is wall time per call
	// across all of them; compare the two as a ratio).
	b.Run("gateway-parallel16", func(b *testing.B) {
		hdr := map[string]string{"Authorization": "Bearer " + tok, "X-Agent-ID": "claude-code", "Mcp-Session-Id": sid}
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				send(b, h.url+"/notes", hdr)
			}
		})
	})
	b.Run("direct-parallel16", func(b *testing.B) {
		direct := directSession(b, h.notes.URL)
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				send(b, h.notes.URL, map[string]string{"Mcp-Session-Id": direct})
			}
		})
	})
}

// benchClient keeps enough idle connections for the parallel runs.
var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// directSession initializes a session with a backend, bypassing the gateway.
func directSession(b *testing.B, url string) string {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(initBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		b.Fatal("backend issued no session")
	}
	return sid
}

// benchEngine is the shipped policy with its tool budget (600 calls an hour
// per caller and tool) raised out of a benchmark's reach: otherwise every
// call after the 600th is a 429 and the benchmark measures the refusal. The
// budget is still an obligation of every call, so its counting is measured.
func benchEngine(b *testing.B) *policy.Engine {
	b.Helper()
	dir := b.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../policies")); err != nil {
		b.Fatal(err)
	}
	data := filepath.Join(dir, "data.json")
	raw, err := os.ReadFile(data)
	if err != nil {
		b.Fatal(err)
	}
	const budget = `"tool_budget": {"limit": 600, "window": "1h"}`
	if !strings.Contains(string(raw), budget) {
		b.Fatalf("%s no longer sets %s", data, budget)
	}
	raw = []byte(strings.Replace(string(raw), budget, `"tool_budget": {"limit": 1000000000, "window": "1h"}`, 1))
	if err := os.WriteFile(data, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	return engineFor(b, dir)
}
