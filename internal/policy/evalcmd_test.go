package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/policy/policytest"
)

func TestEvalCommand(t *testing.T) {
	signingKey, publicKey := policytest.KeyPair(t)
	signed := buildBundle(t, "v9", signingKey)
	_, otherKey := policytest.KeyPair(t)
	withResources := `{"version": 1, "token": {"sub": "a", "scopes": ["mcp:read"], "groups": ["mcp-viewers"]},
		"agent": {"id": "cursor", "enabled": true, "allow_clientless_tokens": true, "scopes": ["mcp:read"]}, "backend": {"name": "employees"},
		"mcp": {"method": "resources/list"}, "resources": [{"uri": "file:///a", "name": "a"}], "prompts": [{"name": "p"}]}`
	stream := `{"version": 1, "token": {"sub": "a", "scopes": ["mcp:read"]},
		"agent": {"id": "cursor", "enabled": true, "allow_clientless_tokens": true, "scopes": ["mcp:read"]}, "backend": {"name": "employees"},
		"mcp": {"kind": "stream", "method": "GET"}, "http": {"method": "GET", "path": "/employees"}}`

	tests := []struct {
		name    string
		o       EvalOptions
		input   string // file under testdata/policy, or inline JSON
		allow   bool
		visible []string
		output  []string // substrings of the output
		err     string
	}{
		{
			name: "viewer call allowed", input: "input-viewer-call-allowed.json", allow: true,
			visible: []string{"get_employee", "list_employees", "search_employees"},
		},
		{
			name: "viewer delete denied, rules explained", input: "input-viewer-delete-denied.json",
			o:       EvalOptions{Explain: ExplainRules},
			visible: []string{"get_employee", "list_employees", "search_employees"},
			output:  []string{"tool delete_employee requires role super-admin on backend employees", "roles.rego:10  Role grant required for the call"},
		},
		{
			name: "allowed call explained", input: "input-viewer-call-allowed.json", allow: true,
			o:       EvalOptions{Explain: ExplainRules},
			visible: []string{"get_employee", "list_employees", "search_employees"},
			output:  []string{"none: every check passed"},
		},
		{
			name: "full trace", input: "input-viewer-delete-denied.json", o: EvalOptions{Explain: ExplainFull},
			visible: []string{"get_employee", "list_employees", "search_employees"},
			output:  []string{"Full trace:", "Enter data.mcp.gateway.decision"},
		},
		{
			name: "fails and notes", input: "input-viewer-delete-denied.json", o: EvalOptions{Explain: ExplainFails},
			visible: []string{"get_employee", "list_employees", "search_employees"},
			output:  []string{"Failed expressions:", "Fail"},
		},
		{
			name: "signed bundle verified", input: "input-viewer-call-allowed.json", allow: true,
			o:       EvalOptions{Source: signed, VerificationKey: publicKey},
			visible: []string{"get_employee", "list_employees", "search_employees"},
			output:  []string{`"revision": "v9"`},
		},
		{name: "signed bundle, wrong key", input: "input-viewer-call-allowed.json", o: EvalOptions{Source: signed, VerificationKey: otherKey}, err: "failed to verify"},
		{name: "resources and prompts listed", input: withResources, allow: true, output: []string{`"visible_resources": [`, `"file:///a"`, `"visible_prompts": [`}},
		{name: "GET stream with mcp.kind", input: stream, allow: true},
		{name: "JSON-RPC request named GET", input: strings.Replace(stream, `"stream"`, `"request"`, 1), output: []string{"method GET is not allowed by policy"}},
		{name: "input without mcp.kind is a request", input: strings.Replace(stream, `"kind": "stream", `, "", 1), output: []string{"method GET is not allowed by policy"}},
		{name: "unknown field", input: `{"versoin": 1}`, err: `unknown field "versoin"`},
		{name: "two documents", input: `{} {}`, err: "more than one JSON document"},
		{name: "not JSON", input: `{"version":`, err: "policy input"},
		{name: "bad explain mode", input: "input-viewer-call-allowed.json", o: EvalOptions{Explain: "why"}, err: `--explain "why"`},
		{name: "missing policy", input: "input-viewer-call-allowed.json", o: EvalOptions{Source: "/nonexistent"}, err: "/nonexistent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			input := []byte(tc.input)
			if strings.HasSuffix(tc.input, ".json") {
				var err error
				if input, err = os.ReadFile("../../testdata/policy/" + tc.input); err != nil {
					t.Fatal(err)
				}
			}
			if tc.o.Source == "" {
				tc.o.Source = shippedPolicies
			}
			// What the command prints: the result as JSON, then the
			// explanation (cmd/mcpgw prints exactly these).
			var out bytes.Buffer
			evaluated, text, err := Evaluate(context.Background(), tc.o, bytes.NewReader(input))
			if err == nil {
				b, _ := json.MarshalIndent(evaluated, "", "  ")
				out.Write(append(b, '\n'))
				out.WriteString(text)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var res EvalResult
			if err := json.NewDecoder(bytes.NewReader(out.Bytes())).Decode(&res); err != nil {
				t.Fatalf("output is not JSON first: %v\n%s", err, out.String())
			}
			if res.Decision.Allow != tc.allow || res.Decision.ID == "" || res.Revision == "" || res.Decision.Revision != res.Revision {
				t.Fatalf("result %+v", res)
			}
			// The evaluation time names its unit, the audit trail's (eval_us).
			if !strings.Contains(out.String(), `"elapsed_us": `) || strings.Contains(out.String(), `"elapsed":`) {
				t.Fatalf("decision time not printed as elapsed_us:\n%s", out.String())
			}
			if tc.visible != nil && strings.Join(res.VisibleTools, ",") != strings.Join(tc.visible, ",") {
				t.Fatalf("visible tools %v, want %v", res.VisibleTools, tc.visible)
			}
			for _, want := range tc.output {
				if !strings.Contains(out.String(), want) {
					t.Fatalf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}
