package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcpgw/mcpgw/internal/ijson"
)

func TestParseObligations(t *testing.T) {
	tests := []struct {
		name string
		json string
		want string // "" for success; else part of the error
	}{
		{"redact patterns", `{"redact": {"patterns": ["[0-9]{4}"]}}`, ""},
		{"redact fields and replacement", `{"redact": {"fields": ["ssn"], "replacement": "***"}}`, ""},
		{"rate limit", `{"rate_limit": {"key": "k", "limit": 3, "window": "1m"}}`, ""},
		{"both", `{"redact": {"fields": ["a"]}, "rate_limit": {"key": "k", "limit": 1, "window": "1s"}}`, ""},
		{"confirm", `{"confirm": {"message": "Delete employee e-1?"}}`, ""},
		{"confirm without message", `{"confirm": {}}`, "message is required"},
		{"confirm empty message", `{"confirm": {"message": " "}}`, "confirm.message"},
		{"confirm unknown key", `{"confirm": {"message": "x", "timeout": 3}}`, "confirm.timeout: unknown"},
		{"unknown obligation", `{"notify": {"to": "secops"}}`, `obligation "notify" is not one this gateway carries out`},
		{"not an object", `["redact"]`, "not an object"},
		{"redact nothing", `{"redact": {}}`, "names no fields and no patterns"},
		{"bad pattern", `{"redact": {"patterns": ["("]}}`, "patterns[0]"},
		{"pattern matching nothing", `{"redact": {"patterns": ["x*"]}}`, "matches the empty string"},
		{"redact unknown key", `{"redact": {"fields": ["a"], "mask": "x"}}`, "redact.mask: unknown"},
		{"redact fields not strings", `{"redact": {"fields": [1]}}`, "redact.fields"},
		{"rate limit without key", `{"rate_limit": {"limit": 3, "window": "1m"}}`, "key, limit and window are all required"},
		{"rate limit zero", `{"rate_limit": {"key": "k", "limit": 0, "window": "1m"}}`, "limit: want a whole number"},
		{"rate limit fraction", `{"rate_limit": {"key": "k", "limit": 1.5, "window": "1m"}}`, "limit: want a whole number"},
		{"rate limit short window", `{"rate_limit": {"key": "k", "limit": 1, "window": "10ms"}}`, "window"},
		{"rate limit long window", `{"rate_limit": {"key": "k", "limit": 1, "window": "48h"}}`, "window"},
		{"rate limit unknown key", `{"rate_limit": {"key": "k", "limit": 1, "window": "1m", "burst": 2}}`, "rate_limit.burst: unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := ast.MustParseTerm(tc.json).Value
			o, err := parseObligations(v, nil)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil || o == nil {
				t.Fatalf("parseObligations: %v", err)
			}
		})
	}
}

// A decision whose obligations cannot be carried out denies.
func TestUnknownObligationDenies(t *testing.T) {
	v := ast.MustParseTerm(`{"allow": true, "obligations": {"notify": {}}}`).Value
	var d Decision
	applyVerdict(&d, v, nil, nil)
	if d.Allow || !strings.HasPrefix(d.Reasons[0], engineErrorPrefix) {
		t.Fatalf("decision = %+v", d)
	}
	// On a deny obligations are not read (nothing is forwarded).
	v = ast.MustParseTerm(`{"allow": false, "reasons": ["no"], "obligations": {"notify": {}}}`).Value
	d = Decision{}
	applyVerdict(&d, v, nil, nil)
	if d.Allow || d.Reasons[0] != "no" || d.Obligations != nil {
		t.Fatalf("deny = %+v", d)
	}
	v = ast.MustParseTerm(`{"allow": true, "obligations": {"rate_limit": {"key": "k", "limit": 2, "window": "1m"}}}`).Value
	d = Decision{}
	applyVerdict(&d, v, nil, nil)
	if !d.Allow || d.Obligations.RateLimit.Window != time.Minute || d.Obligations.Redaction() != nil {
		t.Fatalf("allow = %+v", d)
	}
}

func TestRedactionApply(t *testing.T) {
	o, err := parseObligations(ast.MustParseTerm(`{"redact": {"fields": ["ssn"], "patterns": ["[a-z]+@example\\.com"]}}`).Value, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := ijson.Parse([]byte(`{"content":[{"type":"text","text":"mail alice@example.com or bob@example.com"}],` +
		`"structuredContent":{"ssn":{"n":123},"owner":{"email":"carol@example.com","ssn":"1"},"n":1.50}}`))
	if err != nil {
		t.Fatal(err)
	}
	before := string(in.Encode())
	out := o.Redact.Apply(in)
	got := string(out.Encode())
	want := `{"content":[{"type":"text","text":"mail [REDACTED] or [REDACTED]"}],` +
		`"structuredContent":{"ssn":"[REDACTED]","owner":{"email":"[REDACTED]","ssn":"[REDACTED]"},"n":1.50}}`
	if got != want {
		t.Fatalf("redacted:\n got  %s\n want %s", got, want)
	}
	if string(in.Encode()) != before {
		t.Fatal("Apply changed its argument")
	}
}

// A pattern is compiled once per engine; a bad one stays refused.
func TestPatternCache(t *testing.T) {
	pc := newPatternCache()
	a, err1 := pc.compile("[a-z]+@example")
	b, err2 := pc.compile("[a-z]+@example")
	if err1 != nil || err2 != nil || a != b {
		t.Fatalf("compiled twice or failed: %p %p %v %v", a, b, err1, err2)
	}
	for range 2 {
		if _, err := pc.compile("x*"); err == nil {
			t.Fatal("a pattern matching the empty string was accepted")
		}
		if _, err := pc.compile("("); err == nil {
			t.Fatal("a malformed pattern was accepted")
		}
	}
}
