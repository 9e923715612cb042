package policy

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// richMaskRego uses every form of mask rule OPA's decision-log plugin
// knows: a plain pointer, a removal as an object, an upsert that replaces,
// an upsert that creates, a pointer that matches nothing and a pointer
// into the result.
const richMaskRego = `package system.log

mask contains "/input/mcp/arguments"

mask contains {"op": "remove", "path": "/input/token/claims"}

mask contains {"op": "upsert", "path": "/input/http/remote_addr", "value": "**REDACTED**"}

mask contains {"op": "upsert", "path": "/input/masked_by/log", "value": true}

mask contains "/input/no/such/field"

mask contains "/result/reasons"
`

// With RecordInputs, the decision record carries the input exactly as
// OPA's decision-log plugin logs it for the same decision: the same
// masked input and the same erased and masked pointers. The recorded input
// decides the same again with DecideInput.
func TestRecordedInputMaskedAsOPALogsIt(t *testing.T) {
	collector := startDecisionLogService(t)

	dir := policyDir(t, map[string]string{"policy.rego": versionRego, "mask.rego": richMaskRego, "data.json": `{"mcpgw": {"version": "A"}}`})
	rec := &recorder{}
	e, err := New(context.Background(), Options{
		Source: dir, AllowUnsigned: true, Logger: quietLogger(), DecisionLog: rec.log, RecordInputs: true,
		OPAConfig: map[string]any{
			"services":      map[string]any{"logs": map[string]any{"url": collector.url}},
			"decision_logs": map[string]any{"service": "logs"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	in := versionCall()
	in.HTTP.RemoteAddr = "10.1.2.3"
	d := e.Decide(context.Background(), in)
	if !d.Allow {
		t.Fatalf("decision %+v", d)
	}
	again := e.DecideInput(context.Background(), rec.all()[0].Input)
	stopEngine(t, e)

	rs := rec.all()
	if len(rs) != 1 || rs[0].DecisionID != d.ID || len(rs[0].Input) == 0 {
		t.Fatalf("records %+v", rs)
	}
	events := collector.received()
	i := slices.IndexFunc(events, func(ev map[string]any) bool { return ev["decision_id"] == d.ID })
	if i < 0 {
		t.Fatalf("decision %s not among %d uploaded events", d.ID, len(events))
	}
	var ours any
	if err := json.Unmarshal(rs[0].Input, &ours); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ours, events[i]["input"]) {
		t.Errorf("recorded input\n %v\nOPA's decision log\n %v", ours, events[i]["input"])
	}
	var opaPointers []string
	for _, key := range []string{"erased", "masked"} {
		list, _ := events[i][key].([]any)
		for _, p := range list {
			if s, _ := p.(string); s != "" && s != "/result/reasons" {
				opaPointers = append(opaPointers, s)
			}
		}
	}
	got := slices.Sorted(slices.Values(rs[0].InputMasked))
	slices.Sort(opaPointers)
	if !slices.Equal(got, opaPointers) || len(got) != 4 {
		t.Errorf("recorded pointers %v, OPA's %v (want 4: arguments, claims, remote_addr, masked_by/log)", got, opaPointers)
	}
	if !again.Allow || !slices.Equal(again.Reasons, d.Reasons) || again.Revision != d.Revision || again.ID != "" {
		t.Errorf("DecideInput on the recorded input = %+v, want %+v", again, d)
	}
	if n := len(rec.all()); n != 1 {
		t.Errorf("DecideInput wrote records: %d", n)
	}
}

// Without RecordInputs no input is kept, and without a mask rule the input
// is kept whole.
func TestRecordedInputOffAndUnmasked(t *testing.T) {
	dir := policyDir(t, map[string]string{"policy.rego": versionRego, "data.json": `{"mcpgw": {"version": "A"}}`})
	off, offRec := newEngine(t, Options{Source: dir, AllowUnsigned: true})
	off.Decide(context.Background(), versionCall())
	if r := offRec.all(); len(r) != 1 || r[0].Input != nil || r[0].InputMasked != nil {
		t.Fatalf("record without RecordInputs: %+v", r)
	}
	on, onRec := newEngine(t, Options{Source: dir, AllowUnsigned: true, RecordInputs: true})
	in := versionCall()
	on.Decide(context.Background(), in)
	r := onRec.all()
	if len(r) != 1 || r[0].InputMasked != nil {
		t.Fatalf("record: %+v", r)
	}
	want, err := callInput(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseRecordedInput(r[0].Input)
	if err != nil || got.Compare(want) != 0 {
		t.Fatalf("recorded input %s, want %v (%v)", r[0].Input, want, err)
	}
	// Visibility queries keep no input.
	if _, err := on.Visible(context.Background(), lister([]string{"mcp-viewers"}, readScopes, "employees"), ListTools); err != nil {
		t.Fatal(err)
	}
	for _, r := range onRec.all()[1:] {
		if r.Input != nil {
			t.Errorf("%s record keeps an input", r.Query)
		}
	}
}

// A mask that removes /input leaves the record without input but says so;
// a malformed mask keeps no input at all.
func TestRecordedInputWholeAndMalformedMask(t *testing.T) {
	for _, tt := range []struct {
		mask   string
		masked []string
	}{
		{"package system.log\n\nmask contains \"/input\"\n", []string{"/input"}},
		{"package system.log\n\nmask contains \"input/no-slash\"\n", nil},
		{"package system.log\n\nmask contains {\"op\": \"rename\", \"path\": \"/input/x\"}\n", nil},
	} {
		dir := policyDir(t, map[string]string{"policy.rego": versionRego, "mask.rego": tt.mask, "data.json": `{"mcpgw": {"version": "A"}}`})
		e, rec := newEngine(t, Options{Source: dir, AllowUnsigned: true, RecordInputs: true})
		if d := e.Decide(context.Background(), versionCall()); !d.Allow {
			t.Fatalf("%s: %+v", tt.mask, d)
		}
		r := rec.all()
		if len(r) != 1 || r[0].Input != nil || !slices.Equal(r[0].InputMasked, tt.masked) {
			t.Errorf("%s: record input %s masked %v, want none and %v", tt.mask, r[0].Input, r[0].InputMasked, tt.masked)
		}
	}
}

// DecideInput keeps numbers exact and fails closed on what is not an input.
func TestDecideInputFailures(t *testing.T) {
	e, _ := shippedEngine(t)
	for _, raw := range []string{"", "  ", `{"a":`} {
		d := e.DecideInput(context.Background(), json.RawMessage(raw))
		if d.Allow || len(d.Reasons) != 1 {
			t.Errorf("%q: %+v, want a deny", raw, d)
		}
	}
	v, err := parseRecordedInput(json.RawMessage(`{"n": 12345678901234567890}`))
	if err != nil {
		t.Fatal(err)
	}
	if n := v.(ast.Object).Get(ast.StringTerm("n")); n.String() != "12345678901234567890" {
		t.Errorf("number read as %v", n)
	}
}

// Pointers into arrays remove the element (shifting the rest) or set it,
// as OPA's mask does on a decoded input.
func TestApplyMaskArrays(t *testing.T) {
	doc := any(map[string]any{"token": map[string]any{"groups": []any{"a", "b", "c"}}, "list": []any{[]any{"x", "y"}}})
	rules := ast.MustParseTerm(`["/input/token/groups/0", "/input/list/0/1", {"op": "upsert", "path": "/input/token/groups/1", "value": "Z"}, "/input/token/groups/9"]`).Value
	masked, err := applyMask(&doc, rules)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"token": map[string]any{"groups": []any{"b", "Z"}}, "list": []any{[]any{"x"}}}
	if !reflect.DeepEqual(doc, want) || !slices.Equal(masked, []string{"/input/token/groups/0", "/input/list/0/1", "/input/token/groups/1"}) {
		t.Errorf("got %v %v", doc, masked)
	}
}
