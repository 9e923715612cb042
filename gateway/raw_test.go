package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// rawRequest is one hand-built HTTP exchange with the gateway, for the
// transport rules a client library would never break on purpose.
type rawRequest struct {
	method  string
	path    string
	token   string
	agent   string
	session string
	body    string
	headers map[string]string
}

func (h *harness) do(r rawRequest) *http.Response {
	h.t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	req, err := http.NewRequest(r.method, h.url+r.path, strings.NewReader(r.body))
	if err != nil {
		h.t.Fatal(err)
	}
	if r.method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
	} else {
		req.Header.Set("Accept", "text/event-stream")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.agent != "" {
		req.Header.Set("X-Agent-ID", r.agent)
	}
	if r.session != "" {
		req.Header.Set("Mcp-Session-Id", r.session)
	}
	for k, v := range r.headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	var resp *http.Response
	if len(r.body) > 64<<10 {
		resp, err = sendHeadersOnly(req)
	} else {
		resp, err = http.DefaultClient.Do(req)
	}
	if err != nil {
		h.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// sendHeadersOnly sends req's headers, announcing its whole body, and reads
// the answer without sending the body. The gateway refuses an oversized body
// from its Content-Length alone and closes the connection; a client still
// writing the body then gets a reset that can discard the answer (fasthttp
// answers "100 Continue" to every Expect, so that does not help either).
func sendHeadersOnly(req *http.Request) (*http.Response, error) {
	conn, err := net.Dial("tcp", req.URL.Host)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Length", strconv.FormatInt(req.ContentLength, 10))
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\n", req.Method, req.URL.RequestURI(), req.URL.Host)
	if err := req.Header.Write(&head); err != nil {
		conn.Close()
		return nil, err
	}
	head.WriteString("\r\n")
	if _, err := conn.Write(head.Bytes()); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{resp.Body, conn}
	return resp, nil
}

func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// openSession initializes a session through the gateway and returns its id.
func (h *harness) openSession(path, token, agent string) string {
	h.t.Helper()
	resp := h.do(rawRequest{path: path, token: token, agent: agent, body: initBody})
	testutil.WantStatus(h.t, resp, http.StatusOK)
	body := readAll(h.t, resp)
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		// A 200 without a session is a JSON-RPC error (a denial, a backend
		// failure): what it says is the diagnosis.
		h.t.Fatalf("initialize: no Mcp-Session-Id in HTTP %d (Content-Type %q): %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	h.do(rawRequest{path: path, token: token, agent: agent, session: sid,
		headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"},
		body:    `{"jsonrpc":"2.0","method":"notifications/initialized"}`})
	return sid
}

// rpcMessages reads a reply, JSON or SSE, as JSON-RPC messages in order.
func rpcMessages(t *testing.T, resp *http.Response) []map[string]any {
	t.Helper()
	var out []map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		r := mcp.NewEventReader(resp.Body)
		for {
			ev, err := r.Next()
			if ev.HasData {
				var m map[string]any
				if json.Unmarshal(ev.Data, &m) != nil {
					t.Fatalf("SSE data is not JSON: %s", ev.Data)
				}
				out = append(out, m)
			}
			if err != nil {
				return out
			}
		}
	}
	body := readAll(t, resp)
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("decode batch %s: %v", body, err)
		}
		return out
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return []map[string]any{m}
}

func TestProgressStreamsLiveBeforeResult(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	sid := h.openSession("/notes", tok, "claude-code")
	const stepMS = 150
	resp := h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", session: sid,
		headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"},
		body:    `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"long_running","arguments":{"steps":3,"step_ms":150},"_meta":{"progressToken":"tok"}}}`})
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type = %q, want an SSE stream", ct)
	}
	r := mcp.NewEventReader(resp.Body)
	var kinds []string
	var firstProgress, result time.Time
	for {
		ev, err := r.Next()
		if ev.HasData {
			var m map[string]any
			_ = json.Unmarshal(ev.Data, &m)
			if m["method"] == "notifications/progress" {
				kinds = append(kinds, "progress")
				if firstProgress.IsZero() {
					firstProgress = time.Now()
				}
			} else if m["id"] != nil {
				kinds = append(kinds, "result")
				result = time.Now()
			}
		}
		if err != nil {
			break
		}
	}
	if strings.Join(kinds, ",") != "progress,progress,progress,result" {
		t.Fatalf("events = %v, want three progress notifications then the result", kinds)
	}
	// Buffering would deliver everything at once; a live relay delivers the
	// first progress event at least two steps before the result.
	if gap := result.Sub(firstProgress); gap < 2*stepMS*time.Millisecond*3/4 {
		t.Fatalf("first progress arrived only %v before the result: the stream was buffered", gap)
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
