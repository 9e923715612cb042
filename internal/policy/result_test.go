package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The status a decision may carry: an allow 0 or a 2xx (read as 0), a deny
// 0 or a 4xx. Anything else is malformed, and the caller denies.
func TestParseVerdictStatus(t *testing.T) {
	tests := []struct {
		name     string
		decision string
		status   int
		err      string
	}{
		{name: "allow without status", decision: `{"allow": true}`},
		{name: "allow with 0", decision: `{"allow": true, "status": 0}`},
		{name: "allow with 200, as documented", decision: `{"allow": true, "status": 200, "reasons": []}`},
		{name: "allow with 204", decision: `{"allow": true, "status": 204}`},
		{name: "allow with 299", decision: `{"allow": true, "status": 299}`},
		{name: "allow with 200.0", decision: `{"allow": true, "status": 200.0}`},
		{name: "allow with 403", decision: `{"allow": true, "status": 403}`, err: "decision allows with status 403: want 0 or a 2xx code"},
		{name: "allow with 301", decision: `{"allow": true, "status": 301}`, err: "decision allows with status 301"},
		{name: "allow with 199", decision: `{"allow": true, "status": 199}`, err: "decision allows with status 199"},
		{name: "allow with 300", decision: `{"allow": true, "status": 300}`, err: "decision allows with status 300"},
		{name: "allow with 500", decision: `{"allow": true, "status": 500}`, err: "decision allows with status 500"},
		{name: "allow with -200", decision: `{"allow": true, "status": -200}`, err: "decision allows with status -200"},
		{name: "allow with 200.5", decision: `{"allow": true, "status": 200.5}`, err: "decision allows with status 200.5"},
		{name: "allow with a string status", decision: `{"allow": true, "status": "200"}`, err: "decision status is string, not a number"},
		{name: "deny without status", decision: `{"allow": false, "reasons": ["x"]}`},
		{name: "deny with 0", decision: `{"allow": false, "status": 0}`},
		{name: "deny with 403", decision: `{"allow": false, "status": 403, "scope": "mcp:write"}`, status: 403},
		{name: "deny with 400", decision: `{"allow": false, "status": 400}`, status: 400},
		{name: "deny with 499", decision: `{"allow": false, "status": 499}`, status: 499},
		{name: "deny with 200", decision: `{"allow": false, "status": 200}`, err: "decision status 200 is not 0 or a 4xx code"},
		{name: "deny with 500", decision: `{"allow": false, "status": 500}`, err: "decision status 500 is not 0 or a 4xx code"},
		{name: "deny with 403.5", decision: `{"allow": false, "status": 403.5}`, err: "decision status 403.5 is not 0 or a 4xx code"},
		{name: "deny with a huge status", decision: `{"allow": false, "status": 1e30}`, err: "is not 0 or a 4xx code"},
		{name: "deny with a null status", decision: `{"allow": false, "status": null}`, err: "decision status is null, not a number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := ast.MustParseTerm(tc.decision).Value.(ast.Object)
			v, err := parseVerdict(want, nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseVerdict(%s) = %+v, %v; want error %q", tc.decision, v, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseVerdict(%s): %v", tc.decision, err)
			}
			wantAllow := bool(want.Get(ast.InternedTerm("allow")).Value.(ast.Boolean))
			if v.allow != wantAllow || v.status != tc.status {
				t.Fatalf("parseVerdict(%s) = allow %v status %d, want allow %v status %d", tc.decision, v.allow, v.status, wantAllow, tc.status)
			}
		})
	}
}

// A policy written from the documented contract, {"allow": true, "status":
// 200}, allows; the gateway sees status 0.
func TestAllowWithSuccessStatus(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": "package mcp.gateway\n\n" +
		"decision := {\"allow\": true, \"reasons\": [], \"status\": 200}\n\n" +
		"visible_tools contains t.name if some t in input.tools\n"})
	e, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
	d := e.Decide(context.Background(), caller(nil, nil, "employees", "get_employee", nil))
	if !d.Allow || d.Status != 0 || len(d.Reasons) != 0 {
		t.Fatalf("decision %+v, want an allow with status 0", d)
	}
}
