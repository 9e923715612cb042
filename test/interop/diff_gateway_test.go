package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/gateway"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/policy"
)

// diffPolicy is the policy of the differential tests. Every decision, allow
// or deny, carries one reason: "saw " and the JSON of what the policy was
// shown. The decision log then says exactly what was decided, to compare
// with what the backend ran.
const diffPolicy = `package mcp.gateway

import rego.v1

saw := sprintf("saw %s", [json.marshal({
	"method": object.get(input.mcp, "method", ""),
	"tool": object.get(input.mcp, "tool", ""),
	"arguments": object.get(input.mcp, "arguments", null),
	"kind": object.get(input.mcp, "kind", ""),
	"http_method": object.get(input.http, "method", ""),
	"subject": object.get(input.token, "sub", ""),
})])

read_methods := {"initialize", "ping", "tools/list", "resources/list", "resources/templates/list", "prompts/list"}

default allow := false

allow if input.mcp.method in read_methods

allow if startswith(input.mcp.method, "notifications/")

allow if {
	input.mcp.method == "tools/call"
	input.mcp.tool == "echo"
}

allow if {
	input.mcp.method == "tools/call"
	input.mcp.tool == "read_file"
	startswith(input.mcp.arguments.path, "/public/")
}

allow if {
	input.mcp.method == "resources/read"
	startswith(input.mcp.tool, "file:///public/")
}

allow if {
	input.mcp.method == "prompts/get"
	input.mcp.tool == "greeting"
}

allow if {
	session_traffic
	input.token.sub == "alice"
}

# A GET stream, a DELETE or a client's response is not a call: the gateway
# shows it as kind stream, close or response (or at least as the HTTP method).
session_traffic if object.get(input.mcp, "kind", "") in {"stream", "close", "response"}

session_traffic if input.http.method in {"GET", "DELETE"}

decision := {"allow": true, "reasons": [saw]} if {
	allow
} else := {"allow": false, "reasons": [saw], "status": 403} if {
	session_traffic
} else := {"allow": false, "reasons": [saw]}

visible_tools contains t.name if {
	some t in input.tools
	t.name in {"echo", "read_file"}
}

visible_resources contains r.uri if {
	some r in input.resources
	startswith(r.uri, "file:///public/")
}

visible_prompts contains p.name if {
	some p in input.prompts
	p.name == "greeting"
}
`

const (
	diffAgentID  = "differential"
	diffClientID = "differential-client"
)

// seen is what the policy was shown for one message, read back from the
// reason the diff policy gives.
type seen struct {
	Method     string          `json:"method"`
	Tool       string          `json:"tool"`
	Arguments  json.RawMessage `json:"arguments"`
	Kind       string          `json:"kind"`
	HTTPMethod string          `json:"http_method"`
	Subject    string          `json:"subject"`
}

// decision is one decision record of the gateway under test.
type decision struct {
	allow  bool
	seen   *seen  // nil when the reason is not the diff policy's (an engine error)
	reason string // the reasons, joined, for messages
}

func (d decision) String() string {
	verdict := "deny"
	if d.allow {
		verdict = "allow"
	}
	if d.seen == nil {
		return fmt.Sprintf("%s (%s)", verdict, d.reason)
	}
	s := d.seen
	what := s.Method
	if s.Kind != "" {
		what += " kind=" + s.Kind
	}
	if s.Method == "" {
		what = s.HTTPMethod + " " + what
	}
	return fmt.Sprintf("%s %s tool=%q arguments=%s (subject %s)", verdict, what, s.Tool, compactJSON(s.Arguments), s.Subject)
}

// decisionLog collects the gateway's decision records (not visibility
// queries). The engine writes a record before the gateway forwards or
// answers, so a request's records are complete once its reply is read.
type decisionLog struct {
	mu   sync.Mutex
	recs []decision
}

func (l *decisionLog) add(_ context.Context, r policy.Record) {
	if r.Query != "decision" {
		return
	}
	d := decision{allow: r.Allow, reason: strings.Join(r.Reasons, "; ")}
	for _, reason := range r.Reasons {
		if rest, ok := strings.CutPrefix(reason, "saw "); ok {
			var s seen
			if json.Unmarshal([]byte(rest), &s) == nil {
				d.seen = &s
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, d)
}

func (l *decisionLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recs)
}

func (l *decisionLog) since(m int) []decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]decision(nil), l.recs[m:]...)
}

// diffGateway is mcpgw under test, in this process.
type diffGateway struct {
	url       string
	host      string // host:port, for raw requests
	decisions *decisionLog
}

// startDiffGateway runs the gateway (gateway.Start, as `mcpgw serve` does)
// on a free loopback port in front of backends (name -> URL), with the diff
// policy and identity from issuer; decisionCacheSize is
// policy.decision_cache_size (-1: every decision evaluated).
func startDiffGateway(t *testing.T, issuer string, backends map[string]string, decisionCacheSize int) *diffGateway {
	t.Helper()
	dir := t.TempDir()
	policyDir := filepath.Join(dir, "policy")
	if err := os.MkdirAll(policyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(policyDir, "diff.rego"), []byte(diffPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	addr := ln.Addr().String()
	q := strconv.Quote
	names := make([]string, 0, len(backends))
	for name := range backends {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "server: {listen: %s, public_url: %s}\n", q(addr), q("http://"+addr))
	fmt.Fprintf(&b, "identity: {issuers: [{issuer: %s, audiences: [%s]}]}\n", q(issuer), q(gatewayAudience))
	// A slow machine must not turn a decision into a timeout denial.
	fmt.Fprintf(&b, "policy: {bundle: %s, allow_unsigned: true, timeout: 10s, decision_cache_size: %d, persist_dir: %s}\n",
		q(policyDir), decisionCacheSize, q(filepath.Join(dir, "bundles")))
	// Hundreds of sessions from one subject: the per-caller limits would
	// refuse them, and they are tested on their own (gateway/ratelimit_test.go).
	b.WriteString("ratelimit: {requests_per_minute: 0, sessions_per_minute: 0}\n")
	b.WriteString("store: {dsn: \":memory:\"}\nbackends:\n")
	for _, name := range names {
		fmt.Fprintf(&b, "  %s: {url: %s, paths: [%s], auth_method: none, timeout_seconds: 20}\n", name, q(backends[name]), q("/"+name))
	}
	fmt.Fprintf(&b, "agents:\n  %s: {agent_id: %s, client_id: %s, scopes: [mcp:read, mcp:write], backend_access: [%s]}\n",
		diffAgentID, q(diffAgentID), q(diffClientID), strings.Join(names, ", "))
	configPath := filepath.Join(dir, "mcpgw.yaml")
	if err := os.WriteFile(configPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(configPath, nil)
	if err != nil {
		t.Fatalf("gateway config:\n%s\n%v", b.String(), err)
	}
	logs := &tailBuffer{}
	decisions := &decisionLog{}
	srv, err := gateway.Start(t.Context(), cfg, gateway.StartOptions{
		Listener:    ln,
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		DecisionLog: decisions.add,
	})
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
		if t.Failed() {
			t.Logf("gateway log (warnings and errors, last %d bytes at most):\n%s", outputTailBytes, logs.String())
		}
	})
	return &diffGateway{url: srv.URL, host: addr, decisions: decisions}
}

// rawRequest is one HTTP request written byte for byte: no client library
// may clean the path or touch the body on the way.
type rawRequest struct {
	method  string
	target  string // the request target exactly as sent
	headers [][2]string
	body    []byte
	// headersOnly stops after the status line and headers (a GET stream).
	headersOnly bool
}

// reply is what the gateway answered.
type reply struct {
	status int
	header http.Header
	body   []byte
	msgs   []json.RawMessage // the JSON-RPC messages in the body, in any framing
}

func (r reply) String() string {
	body := string(r.body)
	if len(body) > 600 {
		body = body[:600] + "…"
	}
	return fmt.Sprintf("HTTP %d %s %q", r.status, r.header.Get("Content-Type"), body)
}

// replyTimeout bounds one exchange with the gateway: an upper bound for a
// stuck request, never a measurement.
const replyTimeout = 30 * time.Second

// send writes req to the gateway on a new connection and reads the reply.
func (g *diffGateway) send(t *testing.T, req rawRequest) reply {
	t.Helper()
	conn, err := net.DialTimeout("tcp", g.host, replyTimeout)
	if err != nil {
		t.Fatalf("dial gateway: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(replyTimeout))
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", req.method, req.target, g.host)
	for _, h := range req.headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	if req.body != nil || req.method == http.MethodPost {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(req.body))
	}
	b.WriteString("Connection: close\r\n\r\n")
	b.Write(req.body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatalf("write request to gateway: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: req.method})
	if err != nil {
		t.Fatalf("read gateway reply to %s %s: %v", req.method, req.target, err)
	}
	out := reply{status: resp.StatusCode, header: resp.Header}
	if req.headersOnly {
		// Closing the body would drain the stream; closing the connection ends it.
		return out
	}
	defer resp.Body.Close()
	if out.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("read gateway reply body to %s %s: %v (read so far: %q)", req.method, req.target, err, out.body)
	}
	out.msgs = jsonRPCMessages(resp.Header.Get("Content-Type"), out.body)
	return out
}

// jsonRPCMessages finds the JSON-RPC messages in a body: SSE events (with LF,
// CRLF or lone CR line ends), JSON text sequences (RS-separated), or JSON;
// a batch is split into its members.
func jsonRPCMessages(contentType string, body []byte) []json.RawMessage {
	var values [][]byte
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "text/event-stream" {
		values = sseData(body)
	} else {
		values = [][]byte{bytes.ReplaceAll(body, []byte{0x1e}, []byte{'\n'})}
	}
	var out []json.RawMessage
	for _, v := range values {
		dec := json.NewDecoder(bytes.NewReader(v))
		for {
			var raw json.RawMessage
			if dec.Decode(&raw) != nil {
				break
			}
			var batch []json.RawMessage
			if json.Unmarshal(raw, &batch) == nil {
				out = append(out, batch...)
			} else {
				out = append(out, raw)
			}
		}
	}
	return out
}

// sseData returns the data of each event, as the WHATWG parser reads it:
// lines end with CRLF, LF or CR; a blank line dispatches. A partial last
// event is kept too: what matters here is what a client could see.
func sseData(body []byte) [][]byte {
	var out [][]byte
	var data []byte
	has := false
	dispatch := func() {
		if has {
			out = append(out, data)
		}
		data, has = nil, false
	}
	for len(body) > 0 {
		end := bytes.IndexAny(body, "\r\n")
		line := body
		next := len(body)
		if end >= 0 {
			line = body[:end]
			next = end + 1
			if body[end] == '\r' && end+1 < len(body) && body[end+1] == '\n' {
				next = end + 2
			}
		}
		body = body[next:]
		if len(line) == 0 {
			dispatch()
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		if string(field) == "data" {
			if has {
				data = append(data, '\n')
			}
			data = append(data, value...)
			has = true
		}
	}
	dispatch()
	return out
}

// rpcError is the error code of a JSON-RPC error response, ok false if msg
// is not one.
func rpcError(msg json.RawMessage) (code int, ok bool) {
	var m struct {
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(msg, &m) != nil || m.Error == nil {
		return 0, false
	}
	return m.Error.Code, true
}

// refusalCodes are the JSON-RPC errors that mean the gateway refused a
// message: parse error, invalid request, invalid params, forbidden by policy.
var refusalCodes = []int{-32700, -32600, -32602, -32003}

// refused reports whether the reply refuses the whole request: HTTP 4xx, or
// only JSON-RPC errors with a refusal code.
func (r reply) refused() bool {
	if r.status >= 400 && r.status < 500 {
		return true
	}
	if r.status != http.StatusOK || len(r.msgs) == 0 {
		return false
	}
	for _, m := range r.msgs {
		code, ok := rpcError(m)
		if !ok || !slices.Contains(refusalCodes, code) {
			return false
		}
	}
	return true
}

// sameJSON compares two JSON values as parsed; null, absent and {} are one
// value here, because an SDK hands a handler an empty argument struct for all three.
func sameJSON(a, b json.RawMessage) bool {
	parse := func(raw json.RawMessage) (any, bool) {
		if len(bytes.TrimSpace(raw)) == 0 {
			return map[string]any{}, true
		}
		var v any
		if json.Unmarshal(markLoneSurrogates(raw), &v) != nil {
			return nil, false
		}
		if v == nil {
			return map[string]any{}, true
		}
		return v, true
	}
	va, okA := parse(a)
	vb, okB := parse(b)
	return okA && okB && reflect.DeepEqual(va, vb)
}

func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return strconv.Quote(string(raw))
	}
	return b.String()
}

// decidedAs reports whether the allowing decision d is exactly e: the same
// method, the same tool (resource, prompt) and the same arguments.
func decidedAs(d decision, e execution) bool {
	if !d.allow || d.seen == nil {
		return false
	}
	s := d.seen
	switch e.Kind {
	case "tool":
		return s.Method == "tools/call" && s.Tool == e.Name && sameJSON(s.Arguments, e.Arguments)
	case "resource":
		return s.Method == "resources/read" && s.Tool == e.URI
	case "prompt":
		return s.Method == "prompts/get" && s.Tool == e.Name && sameJSON(s.Arguments, e.Arguments)
	}
	return false
}

// undecided returns the executions no allowing decision accounts for; each
// decision accounts for one execution at most.
func undecided(execs []execution, decisions []decision) []execution {
	used := make([]bool, len(decisions))
	var out []execution
	for _, e := range execs {
		found := false
		for i, d := range decisions {
			if !used[i] && decidedAs(d, e) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			out = append(out, e)
		}
	}
	return out
}

// sameExecutions compares two lists of executions as multisets.
func sameExecutions(got, want []execution) bool {
	if len(got) != len(want) {
		return false
	}
	used := make([]bool, len(want))
	for _, g := range got {
		found := false
		for i, w := range want {
			if !used[i] && g.Kind == w.Kind && g.Name == w.Name && g.URI == w.URI && sameJSON(g.Arguments, w.Arguments) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func describeList[T fmt.Stringer](items []T) string {
	if len(items) == 0 {
		return "nothing"
	}
	const most = 12
	parts := make([]string, 0, min(len(items), most)+1)
	for _, it := range items[:min(len(items), most)] {
		parts = append(parts, it.String())
	}
	if len(items) > most {
		parts = append(parts, fmt.Sprintf("… and %d more", len(items)-most))
	}
	return strings.Join(parts, "; ")
}

func (h httpHit) String() string { return h.Method + " " + h.Path }

// posts counts the requests that carried messages (not GET or DELETE).
func posts(hits []httpHit) int {
	n := 0
	for _, h := range hits {
		if h.Method == http.MethodPost {
			n++
		}
	}
	return n
}
