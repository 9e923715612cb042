package replay

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/policy"
)

// fakePolicy decides by the input's "verdict" member: "allow", "deny:<reason>".
type fakePolicy struct {
	rev      string
	override map[string]string // input verdict -> this policy's verdict
}

func (f fakePolicy) Revision() string { return f.rev }

func (f fakePolicy) DecideInput(_ context.Context, raw json.RawMessage) policy.Decision {
	var in struct {
		Verdict string `json:"verdict"`
	}
	_ = json.Unmarshal(raw, &in)
	v := in.Verdict
	if o, ok := f.override[v]; ok {
		v = o
	}
	if v == "allow" {
		return policy.Decision{Allow: true, Reasons: []string{}, Revision: f.rev}
	}
	return policy.Decision{Reasons: []string{strings.TrimPrefix(v, "deny:")}, Revision: f.rev}
}

func item(id, tool, subject string, allow bool, reasons []string, verdict string, masked ...string) Item {
	return Item{DecisionID: id, Time: time.Unix(int64(len(id)), 0), Backend: "notes", Agent: "claude-code", Subject: subject, Tool: tool,
		Allow: allow, Reasons: reasons, Revision: "r1", Input: json.RawMessage(`{"verdict":"` + verdict + `"}`), Masked: masked}
}

// Each kind of outcome is counted once, grouped, listed; masked
// differences are trusted only when the baseline reproduces the record.
func TestRunOutcomes(t *testing.T) {
	items := []Item{
		item("same", "echo", "vera", true, nil, "allow"),
		item("a2d", "list_files", "vera", true, nil, "to-deny"),
		item("d2a", "write_file", "vera", false, []string{"role"}, "to-allow"),
		item("why", "write_file", "nina", false, []string{"role"}, "deny:scope"),
		item("masked", "read_file", "vera", false, []string{"path"}, "allow", "/input/mcp/arguments"),
		item("masked-ok", "echo", "bob", true, nil, "to-deny", "/input/mcp/arguments"),
		{DecisionID: "none", Backend: "notes", Revision: "r0"},
	}
	cand := fakePolicy{rev: "cand", override: map[string]string{"to-deny": "deny:gone", "to-allow": "allow"}}
	r := Run(context.Background(), Options{Candidate: cand}, items)
	want := Counts{Unchanged: 1, AllowToDeny: 1, DenyToAllow: 1, Reasons: 1, Masked: 2, NoInput: 1}
	if r.Counts != want || r.Records != 7 || r.Candidate != "cand" {
		t.Fatalf("counts %+v records %d, want %+v", r.Counts, r.Records, want)
	}
	if r.Recorded["r1"] != 6 || r.Recorded["r0"] != 1 || !slices.Equal(r.NoInput, []string{"none"}) {
		t.Errorf("recorded %v no input %v", r.Recorded, r.NoInput)
	}
	kinds := map[string]string{}
	for _, c := range r.Changes {
		kinds[c.DecisionID] = c.Kind
	}
	if kinds["a2d"] != AllowToDeny || kinds["d2a"] != DenyToAllow || kinds["why"] != Reasons || len(kinds) != 3 {
		t.Errorf("changes %v", kinds)
	}
	if g := r.Groups["subject"]; len(g) != 2 || g[0].Value != "vera" || g[0].AllowToDeny != 1 || g[0].DenyToAllow != 1 || g[1].Reasons != 1 {
		t.Errorf("groups by subject %+v", g)
	}
	if !r.Trips([]string{AllowToDeny}) || r.Trips(nil) {
		t.Error("Trips")
	}
	if r2 := Run(context.Background(), Options{Candidate: cand}, items[:1]); r2.Trips(ChangeKinds()) {
		t.Error("no change trips")
	}

	// With a baseline that decides like the recording, the masked record
	// whose recorded decision it reproduces becomes a trusted change; the
	// one it does not reproduce (a path argument the mask removed) stays
	// masked.
	base := fakePolicy{rev: "base", override: map[string]string{"to-deny": "allow", "to-allow": "deny:role"}}
	r = Run(context.Background(), Options{Candidate: cand, Baseline: base}, items)
	want = Counts{Unchanged: 1, AllowToDeny: 2, DenyToAllow: 1, Reasons: 0, Masked: 1, NoInput: 1}
	if r.Counts.AllowToDeny != 2 || r.Counts.Masked != 1 || r.Counts.DenyToAllow != 1 {
		t.Fatalf("with baseline: counts %+v, want %+v", r.Counts, want)
	}
	causes := map[string]string{}
	for _, c := range r.Changes {
		causes[c.DecisionID] = c.Cause
	}
	// "why": the baseline decides deny:scope too, so the state changed.
	if causes["a2d"] != CausePolicy || causes["masked-ok"] != CausePolicy || causes["why"] != CauseState {
		t.Errorf("causes %v", causes)
	}
	if r.Masked[0].DecisionID != "masked" || r.Baseline != "base" {
		t.Errorf("masked %+v", r.Masked)
	}
	// A change of state alone does not trip --fail-on reasons.
	if r.Trips([]string{Reasons}) {
		t.Error("a state change tripped --fail-on reasons")
	}
}

func TestParseKinds(t *testing.T) {
	if k, err := ParseKinds("allow-to-deny, reasons"); err != nil || !slices.Equal(k, []string{AllowToDeny, Reasons}) {
		t.Fatalf("%v %v", k, err)
	}
	if _, err := ParseKinds("allow-to-deny,flip"); err == nil || !strings.Contains(err.Error(), `"flip"`) {
		t.Fatalf("unknown kind: %v", err)
	}
}

// OPA decision-log events: the plugin's upload form, its console form, an
// upload body as one line; other queries and other log lines skipped;
// erased and masked pointers kept; filters applied.
func TestFromDecisionLog(t *testing.T) {
	lines := strings.Join([]string{
		`{"decision_id":"d1","path":"mcp/gateway/decision","input":{"version":1,"token":{"sub":"vera","iss":"https://idp"},"agent":{"id":"claude-code"},"backend":{"name":"notes"},"mcp":{"method":"tools/call","tool":"echo"}},"result":{"allow":true,"reasons":[]},"bundles":{"mcpgw":{"revision":"r1"}},"erased":["/input/mcp/arguments"],"timestamp":"2026-12-06T10:00:00Z"}`,
		`{"level":"info","msg":"Decision Log","decision_id":"d2","path":"mcp/gateway/decision","input":{"backend":{"name":"files"},"mcp":{"tool":"read_file"}},"result":{"allow":false,"reasons":["no"]},"bundles":{"a":{"revision":"1"},"b":{"revision":"2"}},"timestamp":"2026-12-06T11:00:00Z"}`,
		`[{"decision_id":"d3","path":"mcp/gateway/decision","input":{"backend":{"name":"notes"}},"error":{"message":"timeout"},"timestamp":"2026-12-06T12:00:00Z"},{"decision_id":"x","path":"system/main","input":{},"result":true}]`,
		`{"level":"info","msg":"Starting decision logger."}`,
		``,
	}, "\n")
	items, skipped, err := FromDecisionLog(strings.NewReader(lines), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || skipped != 2 {
		t.Fatalf("items %d skipped %d", len(items), skipped)
	}
	d1, d2, d3 := items[0], items[1], items[2]
	if d1.Subject != "vera" || d1.Agent != "claude-code" || d1.Backend != "notes" || d1.Tool != "echo" || !d1.Allow || d1.Revision != "r1" ||
		!slices.Equal(d1.Masked, []string{"/input/mcp/arguments"}) || d1.Time.Hour() != 10 {
		t.Errorf("d1 %+v", d1)
	}
	if d2.Allow || !slices.Equal(d2.Reasons, []string{"no"}) || d2.Revision != "a=1,b=2" || d2.Backend != "files" {
		t.Errorf("d2 %+v", d2)
	}
	if d3.Allow || len(d3.Reasons) != 1 || !strings.Contains(d3.Reasons[0], "timeout") {
		t.Errorf("d3 %+v", d3)
	}
	items, _, err = FromDecisionLog(strings.NewReader(lines), Filter{Backend: "notes", Since: time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)})
	if err != nil || len(items) != 1 || items[0].DecisionID != "d3" {
		t.Fatalf("filtered: %+v %v", items, err)
	}
	if _, _, err := FromDecisionLog(strings.NewReader("{\"decision_id\":\"d\",\"path\":\"mcp/gateway/decision\",\"result\":{\"reasons\":[]}}\n"), Filter{}); err == nil {
		t.Fatal("a result without allow was taken")
	}
	if _, _, err := FromDecisionLog(strings.NewReader("not json\n"), Filter{}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad line: %v", err)
	}
}
