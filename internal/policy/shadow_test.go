package policy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/policy/policytest"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// allowAllRego is a candidate policy that would allow everything.
const allowAllRego = `package mcp.gateway

decision := {"allow": true, "reasons": [], "status": 0}

visible_tools contains t.name if some t in input.tools

visible_resources contains r.uri if some r in input.resources

visible_prompts contains p.name if some p in input.prompts
`

type disagreements struct {
	testutil.Collector[ShadowDisagreement]
}

func (d *disagreements) record(_ context.Context, s ShadowDisagreement) { d.Add(s) }

func (d *disagreements) all() []ShadowDisagreement { return d.All() }

// Every call is decided again by the shadow policy; the calls on which it
// would decide otherwise are counted, logged and reported with the enforced
// decision's id, and the shadow never changes what is enforced.
func TestShadowDisagreementsCountedAndRecorded(t *testing.T) {
	shadowDir := policyDir(t, map[string]string{"allow.rego": allowAllRego})
	var logs logBuffer
	var got disagreements
	e, rec := newEngine(t, Options{
		Source: shippedPolicies, AllowUnsigned: true, Shadow: shadowDir,
		Logger: logs.logger(), OnShadowDisagreement: got.record,
	})

	calls := []*Input{
		caller([]string{"mcp-viewers"}, writeScopes, "employees", "get_employee", map[string]any{"employee_id": "e-1"}),
		caller([]string{"mcp-viewers"}, writeScopes, "employees", "delete_employee", map[string]any{"employee_id": "e-1"}),
		caller([]string{"mcp-admins"}, writeScopes, "employees", "delete_employee", map[string]any{"employee_id": "*"}),
		caller([]string{"mcp-admins"}, writeScopes, "employees", "update_employee", map[string]any{"employee_id": "e-1"}),
	}
	denied := map[string]Decision{}
	for _, in := range calls {
		d := e.Decide(context.Background(), in)
		if !d.Allow {
			denied[d.ID] = d
		}
	}
	if len(denied) != 2 {
		t.Fatalf("the shipped policy denied %d of the calls, want 2", len(denied))
	}
	testutil.Eventually(t, 5*time.Second, "shadow evaluated every call", func() bool { return e.ShadowStats().Evaluated == uint64(len(calls)) })

	stats := e.ShadowStats()
	if stats.Disagreements != 2 || stats.Dropped != 0 || stats.Skipped != 0 {
		t.Fatalf("shadow stats %+v", stats)
	}
	seen := got.all()
	if len(seen) != 2 {
		t.Fatalf("%d disagreements reported, want 2", len(seen))
	}
	for _, d := range seen {
		enforced, ok := denied[d.DecisionID]
		if !ok {
			t.Fatalf("disagreement names decision %s, not a denied one", d.DecisionID)
		}
		if d.Enforced.Allow || !d.Shadow.Allow || d.Enforced.Revision != e.Revision() || !strings.HasPrefix(d.Shadow.Revision, "dir:sha256:") ||
			d.Backend != "employees" || d.Kind != KindRequest || d.Method != "tools/call" || d.Tool != "delete_employee" || d.Subject != "alice@example.com" ||
			strings.Join(d.Enforced.Reasons, ";") != strings.Join(enforced.Reasons, ";") {
			t.Fatalf("disagreement %+v", d)
		}
		if !strings.Contains(logs.String(), `"decision_id":"`+d.DecisionID+`"`) {
			t.Fatalf("no log line for disagreement %s", d.DecisionID)
		}
	}
	var line map[string]any
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, "policy shadow disagreement") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if enforced, _ := line["enforced"].(map[string]any); enforced["allow"] != false {
		t.Fatalf("disagreement log line lacks the enforced result: %v", line)
	}
	if shadow, _ := line["shadow"].(map[string]any); shadow["allow"] != true {
		t.Fatalf("disagreement log line lacks the shadow result: %v", line)
	}

	// Only the enforced decisions reach the decision log.
	if n := len(rec.all()); n != len(calls) {
		t.Fatalf("%d decision records for %d calls", n, len(calls))
	}
	st := e.Status()
	if st.Shadow == nil || !st.Shadow.Ready || st.Shadow.Disagreements != 2 || st.Shadow.Revision == "" {
		t.Fatalf("status shadow %+v", st.Shadow)
	}
}

// A full shadow queue drops and counts calls rather than delay them.
func TestShadowQueueDropsWhenFull(t *testing.T) {
	shadowDir := policyDir(t, map[string]string{"allow.rego": allowAllRego})
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	e, _ := newEngine(t, Options{
		Source: shippedPolicies, AllowUnsigned: true, Shadow: shadowDir,
		ShadowQueue: 1, ShadowWorkers: 1,
		OnShadowDisagreement: func(context.Context, ShadowDisagreement) {
			entered <- struct{}{}
			<-release
		},
	})
	denied := caller([]string{"mcp-viewers"}, writeScopes, "employees", "delete_employee", map[string]any{"employee_id": "e-1"})

	e.Decide(context.Background(), denied) // the worker takes it and blocks in the hook
	<-entered
	e.Decide(context.Background(), denied) // waits in the queue
	e.Decide(context.Background(), denied) // dropped: the queue holds one and the worker is busy
	if s := e.ShadowStats(); s.Dropped != 1 {
		t.Fatalf("stats with a full queue: %+v", s)
	}
	close(release)
	testutil.Eventually(t, 5*time.Second, "queued call evaluated", func() bool { return e.ShadowStats().Evaluated == 2 })
	if s := e.ShadowStats(); s.Disagreements != 2 || s.Dropped != 1 {
		t.Fatalf("final stats %+v", s)
	}
}

// A shadow source that cannot be loaded is a configuration error.
func TestShadowSourceMustLoad(t *testing.T) {
	signingKey, publicKey := policytest.KeyPair(t)
	unsigned := writeBundle(t, versioned("s1", "A", ""))
	_, err := New(context.Background(), Options{
		Source: writeBundle(t, versioned("r1", "A", signingKey)), VerificationKey: publicKey,
		Shadow: unsigned, Logger: quietLogger(), DecisionLog: func(context.Context, Record) {},
	})
	if err == nil || !strings.Contains(err.Error(), "policy.shadow") || !strings.Contains(err.Error(), "bundle missing .signatures.json") {
		t.Fatalf("New with an unsigned shadow: %v", err)
	}
}
