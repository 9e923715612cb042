package gateway

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/upstream"
)

// upstreamHeadersSet is upstreamHeaders as http.Header.Set builds it: the
// reference the allocation-saving version must match.
func upstreamHeadersSet(c *fiber.Ctx, cl *call) http.Header {
	h := http.Header{}
	for _, name := range forwardedHeaders {
		if v := c.Get(name); v != "" {
			h.Set(name, strings.Clone(v))
		}
	}
	for name, values := range cl.hints {
		h[name] = values
	}
	if cl.hasSession {
		h.Set(mcpgo.HeaderSessionID, cl.session.Upstream)
	}
	h.Set(fiber.HeaderXRequestID, cl.requestID)
	return h
}

func TestUpstreamHeaders(t *testing.T) {
	all := [][2]string{
		{"Content-Type", "application/json"}, {"Accept", "application/json, text/event-stream"},
		{"User-Agent", "claude-code/1.0"}, {"MCP-Protocol-Version", "2026-07-28"}, {"Last-Event-ID", "ev-7"},
		// Never forwarded.
		{"Authorization", "Bearer secret"}, {"Mcp-Method", "tools/call"}, {"Cookie", "a=b"}, {"Mcp-Session-Id", "sealed"},
	}
	for _, tc := range []struct {
		name    string
		headers [][2]string
		cl      call
	}{
		{"every forwarded header, a session and hints", all, call{
			requestID: "req-1", hasSession: true, session: upstream.Session{Upstream: "up-1"},
			hints: http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"echo"}},
		}},
		{"some headers, no session", [][2]string{{"accept", "*/*"}, {"mcp-protocol-version", "2025-06-18"}}, call{requestID: "req-2"}},
		{"none", nil, call{requestID: "req-3"}},
		{"an empty upstream session id", all[:2], call{requestID: "req-4", hasSession: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := unitCtx(t, fiber.MethodPost, "/notes", tc.headers)
			got, want := (&Gateway{}).upstreamHeaders(c, &tc.cl), upstreamHeadersSet(c, &tc.cl)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("headers\n got %v\nwant %v", got, want)
			}
			// The values are the request's, copied: an append to one value
			// list leaves the others alone.
			for k := range got {
				got[k] = append(got[k], "x")
			}
			for k, v := range got {
				if len(v) != len(want[k])+1 || v[len(v)-1] != "x" || !reflect.DeepEqual(v[:len(v)-1], want[k]) {
					t.Fatalf("%s after appends: %q, want %q + x", k, v, want[k])
				}
			}
		})
	}
}
