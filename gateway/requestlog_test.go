package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/telemetry"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// requestLines are the request log lines in the gateway's log, by request id.
func requestLines(t *testing.T, logs *testutil.SyncBuffer) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Bytes())
		}
		if m["msg"] != "mcp request" {
			continue
		}
		id := fmt.Sprint(m["request_id"])
		if out[id] != nil {
			t.Errorf("two request log lines for request %s:\n%v\n%v", id, out[id], m)
		}
		out[id] = m
	}
	return out
}

// Every request the gateway answers on a backend's path leaves exactly one
// info line, whichever step answered it, saying who, through what, to
// where, what, how it ended and how long it took, with the ids of its
// decisions; never a token, a session id or an argument.
func TestRequestLogOneLinePerRequest(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	h := newHarness(t, harnessOptions{
		authorizer: shippedEngine(t),
		logger:     telemetry.NewLogger(config.Log{Level: "info", Format: "json"}, logs),
		mutate: func(c *config.Config) {
			// Per caller: only mallory's batch exceeds it.
			c.RateLimit.RequestsPerMinute = 30
		},
	})
	viewer := h.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, "claude-client")
	mallory := h.token("mallory", []string{"mcp:read"}, []string{"mcp-viewers"}, "claude-client")
	sid := h.openSession("/employees", viewer, "claude-code")
	const secretArg = "ARG-must-not-be-logged"
	call := func(id int, tool string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"id":%q}}}`, id, tool, secretArg)
	}
	pv := "2025-06-18"
	var batch []string
	for i := range 31 {
		batch = append(batch, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, i))
	}

	type want struct {
		status  int
		outcome string
		fields  map[string]any // exact values
		present []string       // set, any value
		absent  []string
	}
	who := map[string]any{"subject": "alice", "issuer": h.idp.Issuer(), "agent": "claude-code", "backend": "employees"}
	with := func(extra map[string]any) map[string]any {
		out := maps.Clone(who)
		maps.Copy(out, extra)
		return out
	}
	tests := []struct {
		name string
		req  rawRequest
		want want
	}{
		{"allowed call", rawRequest{path: "/employees", token: viewer, agent: "claude-code", session: sid, headers: map[string]string{"Mcp-Protocol-Version": pv}, body: call(2, "get_employee")},
			want{200, "ok", with(map[string]any{"http_method": "POST", "mcp_method": "tools/call", "tool": "get_employee"}), []string{"decision_ids", "session_hash"}, []string{"reason", "denied", "stream"}}},
		{"denied by policy", rawRequest{path: "/employees", token: viewer, agent: "claude-code", session: sid, headers: map[string]string{"Mcp-Protocol-Version": pv}, body: call(3, "update_employee")},
			want{200, "denied", with(map[string]any{"mcp_method": "tools/call", "tool": "update_employee", "denied": float64(1)}), []string{"decision_ids", "reason"}, nil}},
		{"no token", rawRequest{path: "/employees", body: call(4, "get_employee")},
			want{401, "unauthenticated", map[string]any{"backend": "employees", "reason": "missing bearer token in Authorization header"}, nil, []string{"subject", "agent", "mcp_method", "decision_ids"}}},
		{"bad token", rawRequest{path: "/employees", token: "not-a-jwt", agent: "claude-code", body: call(5, "get_employee")},
			want{401, "unauthenticated", map[string]any{"backend": "employees"}, []string{"reason"}, []string{"subject"}}},
		{"agent refused", rawRequest{path: "/employees", token: viewer, agent: "no-such-agent", body: call(6, "get_employee")},
			want{403, "forbidden", map[string]any{"subject": "alice", "agent": "no-such-agent", "backend": "employees"}, []string{"reason"}, []string{"mcp_method"}}},
		{"malformed body", rawRequest{path: "/employees", token: viewer, agent: "claude-code", session: sid, headers: map[string]string{"Mcp-Protocol-Version": pv}, body: `{"jsonrpc":"2.0","id":7,`},
			want{400, "invalid", with(nil), []string{"decision_ids", "reason"}, []string{"mcp_method"}}},
		{"rate limited", rawRequest{path: "/employees", token: mallory, agent: "claude-code", headers: map[string]string{"Mcp-Protocol-Version": "2025-03-26"}, body: "[" + strings.Join(batch, ",") + "]"},
			want{429, "rate_limited", map[string]any{"subject": "mallory", "mcp_method": "batch", "batch_size": float64(31), "mcp_methods": []any{"tools/list"}}, []string{"reason"}, []string{"decision_ids"}}},
		{"unknown session", rawRequest{path: "/employees", token: viewer, agent: "claude-code", session: "forged-session-id", headers: map[string]string{"Mcp-Protocol-Version": pv}, body: call(8, "get_employee")},
			want{404, "not_found", with(nil), []string{"session_hash", "reason"}, []string{"decision_ids"}}},
		{"batch, one member denied", rawRequest{path: "/employees", token: viewer, agent: "claude-code", session: sid, headers: map[string]string{"Mcp-Protocol-Version": "2025-03-26"}, body: "[" + call(9, "get_employee") + "," + call(10, "delete_employee") + "]"},
			want{200, "ok", with(map[string]any{"mcp_method": "batch", "batch_size": float64(2), "tools": []any{"get_employee", "delete_employee"}, "denied": float64(1)}), []string{"decision_ids"}, []string{"tool"}}},
		{"body too large", rawRequest{path: "/employees", token: viewer, agent: "claude-code", body: strings.Repeat(" ", 1<<20+1)},
			want{413, "invalid", map[string]any{"backend": "employees"}, []string{"reason"}, []string{"subject"}}},
		{"GET stream", rawRequest{method: http.MethodGet, path: "/employees", token: viewer, agent: "claude-code", session: sid, headers: map[string]string{"Mcp-Protocol-Version": pv}},
			want{200, "ok", with(map[string]any{"http_method": "GET", "stream": true}), []string{"decision_ids", "session_hash"}, []string{"mcp_method"}}},
		{"DELETE", rawRequest{method: http.MethodDelete, path: "/employees", token: viewer, agent: "claude-code", session: sid, headers: map[string]string{"Mcp-Protocol-Version": pv}},
			want{200, "ok", with(map[string]any{"http_method": "DELETE"}), []string{"decision_ids", "session_hash"}, []string{"mcp_method"}}},
	}
	replies := map[string]string{}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rid := fmt.Sprintf("rl-%d", i)
			if tc.req.headers == nil {
				tc.req.headers = map[string]string{}
			}
			tc.req.headers["X-Request-ID"] = rid
			resp := h.do(tc.req)
			testutil.WantStatus(t, resp, tc.want.status)
			if tc.req.method != http.MethodGet {
				replies[tc.name] = string(readAll(t, resp))
			}
			// The line is written before the answer leaves the gateway.
			line := requestLines(t, logs)[rid]
			if line == nil {
				t.Fatalf("no request log line for %s:\n%s", rid, logs.String())
			}
			if line["level"] != "INFO" || line["status"] != float64(tc.want.status) || line["outcome"] != tc.want.outcome {
				t.Errorf("level, status, outcome = %v, %v, %v; want INFO, %d, %s", line["level"], line["status"], line["outcome"], tc.want.status, tc.want.outcome)
			}
			if d, ok := line["duration_ms"].(float64); !ok || d < 0 {
				t.Errorf("duration_ms = %#v, want milliseconds", line["duration_ms"])
			}
			for k, v := range tc.want.fields {
				if got := line[k]; fmt.Sprint(got) != fmt.Sprint(v) {
					t.Errorf("%s = %#v, want %#v", k, got, v)
				}
			}
			for _, k := range tc.want.present {
				if line[k] == nil || line[k] == "" {
					t.Errorf("%s missing", k)
				}
			}
			for _, k := range tc.want.absent {
				if _, ok := line[k]; ok {
					t.Errorf("%s = %#v, want none", k, line[k])
				}
			}
			if ids, ok := line["decision_ids"].([]any); ok && len(ids) == 0 {
				t.Errorf("decision_ids empty")
			}
			if s, ok := line["session_hash"].(string); ok && !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(s) {
				t.Errorf("session_hash %q", s)
			}
			// A denial's line carries the decision id the client got.
			if m := regexp.MustCompile(`"decision_id":"([^"]+)"`).FindStringSubmatch(replies[tc.name]); m != nil &&
				!strings.Contains(fmt.Sprint(line["decision_ids"]), m[1]) {
				t.Errorf("decision id %s of the reply is not in the log line's %v", m[1], line["decision_ids"])
			}
		})
	}
	out := logs.String()
	for _, secret := range []string{viewer, mallory, sid, "forged-session-id", secretArg} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows %.20s…", secret)
		}
	}
}
