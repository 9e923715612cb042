package policy

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/testutil"
)

// Every way the engine can fail must deny, with the reason in the decision.
func TestEngineFailuresDeny(t *testing.T) {
	tests := []struct {
		name    string
		rego    string
		timeout time.Duration
		reason  string
		// notReady: Ready must report this.
		notReady string
	}{
		{
			name:     "no policy defines the decision",
			rego:     "package other\n\nx := 1\n",
			reason:   "policy engine error: data.mcp.gateway.decision is undefined",
			notReady: "defines no data.mcp.gateway.decision",
		},
		{
			name:   "decision undefined for this input",
			rego:   "package mcp.gateway\n\ndecision := {\"allow\": true, \"reasons\": [], \"status\": 0} if input.nothing\n\nvisible_tools := set()\n\nvisible_resources := set()\n\nvisible_prompts := set()\n",
			reason: "policy engine error: data.mcp.gateway.decision is undefined",
		},
		{
			name:   "allow is not a boolean",
			rego:   "package mcp.gateway\n\ndecision := {\"allow\": \"yes\", \"reasons\": []}\n",
			reason: "policy engine error: malformed decision: decision allow is string, not a boolean",
		},
		{
			name:   "decision is not an object",
			rego:   "package mcp.gateway\n\ndecision := true\n",
			reason: "policy engine error: malformed decision: decision is boolean, not an object",
		},
		{
			name:   "allow field missing",
			rego:   "package mcp.gateway\n\ndecision := {\"reasons\": []}\n",
			reason: "policy engine error: malformed decision: decision has no allow field",
		},
		{
			name:   "reasons are not strings",
			rego:   "package mcp.gateway\n\ndecision := {\"allow\": true, \"reasons\": [1]}\n",
			reason: "policy engine error: malformed decision: decision reasons: number is not a string",
		},
		{
			name:   "status is not a 4xx",
			rego:   "package mcp.gateway\n\ndecision := {\"allow\": false, \"reasons\": [\"x\"], \"status\": 200}\n",
			reason: "policy engine error: malformed decision: decision status 200 is not 0 or a 4xx code",
		},
		{
			name:   "allow with a transport status",
			rego:   "package mcp.gateway\n\ndecision := {\"allow\": true, \"reasons\": [], \"status\": 403}\n",
			reason: "policy engine error: malformed decision: decision allows with status 403",
		},
		{
			name:   "scope is not a string",
			rego:   "package mcp.gateway\n\ndecision := {\"allow\": false, \"reasons\": [\"x\"], \"status\": 403, \"scope\": [\"mcp:write\"]}\n",
			reason: "policy engine error: malformed decision: decision scope is array, not a string",
		},
		{
			name:   "conflicting decisions are an eval error",
			rego:   "package mcp.gateway\n\ndecision := {\"allow\": true} if input.version == 1\n\ndecision := {\"allow\": false} if input.agent.id == \"cursor\"\n",
			reason: "policy engine error: evaluation failed: ",
		},
		{
			name: "evaluation runs past the timeout",
			rego: "package mcp.gateway\n\nr := numbers.range(1, 2000)\n\n" +
				"decision := {\"allow\": true} if {\n\tsome a in r\n\tsome b in r\n\tsome c in r\n\ta + b + c == -1\n}\n",
			timeout: 20 * time.Millisecond,
			reason:  "policy engine error: evaluation exceeded 20ms",
		},
		{
			name:   "deny without a reason gets one",
			rego:   "package mcp.gateway\n\ndecision := {\"allow\": false}\n",
			reason: "denied by policy (no reason given)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"policy.rego": tc.rego})
			e, rec := newEngine(t, Options{Source: dir, AllowUnsigned: true, Timeout: tc.timeout})
			start := time.Now()
			d := e.Decide(context.Background(), caller([]string{"mcp-super-admins"}, writeScopes, "employees", "get_employee", nil))
			if d.Allow || d.Status != 0 || len(d.Reasons) != 1 || !strings.HasPrefix(d.Reasons[0], tc.reason) {
				t.Fatalf("decision %+v, want a deny with reason %q", d, tc.reason)
			}
			if tc.timeout > 0 && time.Since(start) > 40*tc.timeout {
				t.Fatalf("timed-out evaluation took %s", time.Since(start))
			}
			if got := rec.all(); len(got) != 1 || got[0].Allow || got[0].Reasons[0] != d.Reasons[0] {
				t.Fatalf("records %+v, want one deny record", got)
			}
			err := e.Ready()
			if tc.notReady != "" && (err == nil || !strings.Contains(err.Error(), tc.notReady)) {
				t.Fatalf("Ready() = %v, want %q", err, tc.notReady)
			}
		})
	}
}

func TestVisibleFailuresHideEverything(t *testing.T) {
	tests := []struct {
		name string
		rego string
		want string
	}{
		{"no visibility rule", "package mcp.gateway\n\ndecision := {\"allow\": true}\n", "data.mcp.gateway.visible_tools is undefined"},
		{"not a set of strings", "package mcp.gateway\n\nvisible_tools := [1, 2]\n", "malformed data.mcp.gateway.visible_tools: number is not a string"},
		{"not a collection", "package mcp.gateway\n\nvisible_tools := \"all\"\n", "malformed data.mcp.gateway.visible_tools: string, not an array or set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, Options{Source: policyDir(t, map[string]string{"p.rego": tc.rego}), AllowUnsigned: true})
			names, err := e.Visible(context.Background(), lister([]string{"mcp-super-admins"}, writeScopes, "employees"), ListTools)
			if err == nil || names != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Visible = %v, %v; want nil and %q", names, err, tc.want)
			}
			if got := rec.all(); len(got) != 1 || got[0].Allow {
				t.Fatalf("records %+v, want one failed visibility record", got)
			}
		})
	}
}

func TestCancelledContextDenies(t *testing.T) {
	in := caller([]string{"mcp-viewers"}, readScopes, "employees", "get_employee", nil)
	e, _ := shippedEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d := e.Decide(ctx, in); d.Allow || d.Reasons[0] != "policy engine error: evaluation cancelled: context canceled" {
		t.Fatalf("decision for a cancelled caller %+v", d)
	}

	// Cancelled while evaluating: the caller's context stops the query
	// before the engine's own timeout would.
	slow := policyDir(t, map[string]string{"p.rego": "package mcp.gateway\n\nr := numbers.range(1, 2000)\n\n" +
		"decision := {\"allow\": true} if {\n\tsome a in r\n\tsome b in r\n\tsome c in r\n\ta + b + c == -1\n}\n"})
	e, _ = newEngine(t, Options{Source: slow, AllowUnsigned: true, Timeout: time.Minute})
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if d := e.Decide(ctx, in); d.Allow || d.Reasons[0] != "policy engine error: evaluation cancelled: context deadline exceeded" {
		t.Fatalf("decision for a caller that left %+v", d)
	}
}

func TestStoppedAndNilEnginesDeny(t *testing.T) {
	var nilEngine *Engine
	in := caller([]string{"mcp-super-admins"}, writeScopes, "employees", "get_employee", nil)
	if d := nilEngine.Decide(context.Background(), in); d.Allow || d.Reasons[0] != "policy engine error: policy engine not started" {
		t.Fatalf("nil engine decided %+v", d)
	}
	if _, err := nilEngine.Visible(context.Background(), in, ListTools); err == nil {
		t.Fatal("nil engine showed tools")
	}
	if nilEngine.Ready() == nil || nilEngine.Revision() != "" {
		t.Fatal("nil engine claims to be ready")
	}

	e, _ := shippedEngine(t)
	if err := e.Ready(); err != nil {
		t.Fatalf("shipped policies not ready: %v", err)
	}
	e.Stop(context.Background())
	if d := e.Decide(context.Background(), in); d.Allow || d.Reasons[0] != "policy engine error: policy engine stopped" {
		t.Fatalf("stopped engine decided %+v", d)
	}
	if _, err := e.Visible(context.Background(), in, ListTools); err == nil {
		t.Fatal("stopped engine showed tools")
	}
	if e.Ready() == nil {
		t.Fatal("stopped engine claims to be ready")
	}
	if d := e.Decide(context.Background(), nil); d.Allow || d.Reasons[0] != "policy engine error: no input" {
		t.Fatalf("nil input decided %+v", d)
	}
}

func TestNewRejectsBadSources(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"missing directory", Options{Source: "/nonexistent/policies", AllowUnsigned: true}, "policy source /nonexistent/policies"},
		{"rego that does not compile", Options{Source: "BROKEN", AllowUnsigned: true}, "rego_"},
		{"unsigned refused", Options{Source: shippedPolicies}, "allow_unsigned is false"},
		{"unsupported OPA section", Options{Source: shippedPolicies, AllowUnsigned: true, OPAConfig: map[string]any{"bundles": map[string]any{"x": map[string]any{}}}}, "policy.opa.bundles"},
		{"unknown key id", Options{Source: shippedPolicies, KeyID: "ci"}, `policy key_id "ci"`},
		{"unsupported algorithm", Options{Source: shippedPolicies, VerificationKey: "-----BEGIN PUBLIC KEY-----\n", VerificationAlg: "none"}, "not supported"},
		{"key file that is not PEM", Options{Source: shippedPolicies, VerificationKey: shippedPolicies + "/data.json"}, "not a PEM file"},
		{"negative timeout", Options{Source: shippedPolicies, AllowUnsigned: true, Timeout: -time.Second}, "must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.o.Source == "BROKEN" {
				tc.o.Source = policyDir(t, map[string]string{"p.rego": "package mcp.gateway\n\ndecision := {\"allow\": undefined_var}\n"})
			}
			tc.o.Logger = quietLogger()
			e, err := New(context.Background(), tc.o)
			if err == nil {
				e.Stop(context.Background())
				t.Fatalf("New accepted %+v", tc.o)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestTestFilesAreNotLoaded(t *testing.T) {
	dir := policyDir(t, map[string]string{
		"p.rego":      "package mcp.gateway\n\ndecision := {\"allow\": false, \"reasons\": [\"closed\"]}\n",
		"p_test.rego": "package mcp.gateway\n\ndecision := {\"allow\": true}\n",
	})
	e, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
	if d := e.Decide(context.Background(), lister(nil, nil, "employees")); d.Allow || d.Reasons[0] != "closed" {
		t.Fatalf("decision %+v: the _test.rego file was loaded", d)
	}
}

// Only decision and visible_tools are mandatory. A policy without
// visible_resources or visible_prompts is ready, hides every item of those
// kinds and says so once per activation, not once per list.
func TestOptionalVisibilityRules(t *testing.T) {
	const admin = "package mcp.admin\n\nallow := false\n"
	gateway := func(extra string) string {
		return "package mcp.gateway\n\n" +
			"decision := {\"allow\": true, \"reasons\": [], \"status\": 0}\n\n" +
			"visible_tools contains t.name if some t in input.tools\n" + extra
	}
	tests := []struct {
		name    string
		extra   string
		hidden  []ListKind
		warning string
	}{
		{
			name: "both left out", hidden: []ListKind{ListResources, ListPrompts},
			warning: "data.mcp.gateway.visible_resources and data.mcp.gateway.visible_prompts are undefined: every resource and prompt will be hidden",
		},
		{
			name: "prompts left out", extra: "\nvisible_resources contains r.uri if some r in input.resources\n",
			hidden:  []ListKind{ListPrompts},
			warning: "data.mcp.gateway.visible_prompts is undefined: every prompt will be hidden",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"gateway.rego": gateway(tc.extra), "admin.rego": admin})
			var logs testutil.SyncBuffer
			e, rec := newEngine(t, Options{Source: dir, AllowUnsigned: true, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			if err := e.Ready(); err != nil {
				t.Fatalf("Ready() = %v, want ready", err)
			}
			ctx := context.Background()
			in := lister(nil, nil, "employees")
			in.Resources = []Resource{{URI: "file:///a", Name: "a"}}
			in.Prompts = []Prompt{{Name: "summarize"}}
			for range 3 {
				for _, kind := range tc.hidden {
					names, err := e.Visible(ctx, in, kind)
					if err != nil || names == nil || len(names) != 0 {
						t.Fatalf("Visible(%s) = %v, %v; want an empty set and no error", kind, names, err)
					}
					c, err := ResourceCatalog(in.Resources)
					if kind == ListPrompts {
						c, err = PromptCatalog(in.Prompts)
					}
					if err != nil {
						t.Fatal(err)
					}
					if names, err := e.VisibleCatalog(ctx, in, c); err != nil || len(names) != 0 {
						t.Fatalf("VisibleCatalog(%s) = %v, %v; want an empty set and no error", kind, names, err)
					}
				}
			}
			if tools, err := e.Visible(ctx, in, ListTools); err != nil || len(tools) != len(in.Tools) {
				t.Fatalf("Visible(tools) = %v, %v", tools, err)
			}
			if len(tc.hidden) == 1 {
				if res, err := e.Visible(ctx, in, ListResources); err != nil || !res["file:///a"] {
					t.Fatalf("Visible(resources) = %v, %v", res, err)
				}
			}
			if d := e.Decide(ctx, in); !d.Allow {
				t.Fatalf("decision %+v", d)
			}
			for _, r := range rec.all() {
				if !r.Allow {
					t.Fatalf("failed record %+v", r)
				}
			}
			// (The unsigned source is warned about too, on its own.)
			warnings := logLines(t, logs.String(), "WARN", "visible_")
			if len(warnings) != 1 || warnings[0] != tc.warning {
				t.Fatalf("warnings %q, want exactly %q", warnings, tc.warning)
			}
			if errs := logLines(t, logs.String(), "ERROR", ""); len(errs) != 0 {
				t.Fatalf("errors logged: %q", errs)
			}

			// Each activation warns once again.
			if err := os.WriteFile(filepath.Join(dir, "gateway.rego"), []byte(gateway(tc.extra+"\nunused := 1\n")), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := e.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			if names, err := e.Visible(ctx, in, tc.hidden[0]); err != nil || len(names) != 0 {
				t.Fatalf("after a reload Visible(%s) = %v, %v", tc.hidden[0], names, err)
			}
			if warnings := logLines(t, logs.String(), "WARN", "visible_"); len(warnings) != 2 || warnings[1] != tc.warning {
				t.Fatalf("warnings after a reload %q, want two", warnings)
			}
		})
	}
}

// logLines returns the messages of the JSON log lines at level that
// contain substring.
func logLines(t *testing.T, logs, level, substring string) []string {
	t.Helper()
	var out []string
	for line := range strings.Lines(logs) {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Level == level && strings.Contains(rec.Msg, substring) {
			out = append(out, rec.Msg)
		}
	}
	return out
}
