package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/secrets"
)

// Secrets the fixtures carry; no audit record may contain them.
const (
	agentSecret   = "agent-client-secret-6f1e"
	agentKey      = `{"kty":"RSA","d":"private-exponent-77aa"}`
	backendAPIKey = "backend-api-key-93c2"
	backendPass   = "url-password-0d4b"
)

var allSecrets = []string{agentSecret, "private-exponent-77aa", backendAPIKey, backendPass}

func boolPtr(b bool) *bool { return &b }

func testAgent(name string, variant int) config.Agent {
	return config.Agent{
		Name: name, AgentID: name + "-id", ClientID: "0oa-" + name, ClientSecret: agentSecret,
		PrivateKey: agentKey, PrivateKeyFile: "/etc/mcpgw/" + name + ".pem",
		Scopes: []string{"mcp:read", fmt.Sprintf("mcp:v%d", variant)}, BackendAccess: []string{"employees"},
		Enabled: boolPtr(variant%2 == 0), Description: fmt.Sprintf("agent %s v%d", name, variant),
	}
}

func testBackend(name string, variant int) config.Backend {
	return config.Backend{
		Name: name, URL: "https://svc:" + backendPass + "@" + name + ".example.com/mcp",
		Paths: []string{"/" + name}, AuthMethod: "pre-shared-key",
		AuthConfig: map[string]any{
			"header_name": "X-API-Key", "api_key": backendAPIKey, "retries": variant,
			"nested": map[string]any{"ratio": 0.25, "list": []any{"a", 2}},
		},
		Description: fmt.Sprintf("backend %s v%d", name, variant), TimeoutSeconds: 10 + variant,
		Enabled: boolPtr(true), Labels: map[string]string{"v": fmt.Sprint(variant)},
	}
}

var adminMeta = ChangeMeta{Subject: "alice@example.com", Issuer: "https://idp.example.com", Agent: "admin-cli", DecisionID: "dec-1", Revision: "bundle-7", RequestID: "req-1"}

// objectOps lets one generic test exercise agents and backends alike.
type objectOps[T any] struct {
	kind audit.ObjectKind
	make func(name string, variant int) T
	list func(context.Context, Store) ([]Entry[T], error)
	get  func(context.Context, Store, string) (Entry[T], error)
	put  func(context.Context, Store, T, ChangeMeta) (Change[T], error)
	del  func(context.Context, Store, string, ChangeMeta) (Change[T], error)
}

var agentOps = objectOps[config.Agent]{
	kind: audit.ObjectAgent, make: testAgent,
	list: func(ctx context.Context, s Store) ([]Entry[config.Agent], error) { return s.ListAgents(ctx) },
	get:  func(ctx context.Context, s Store, n string) (Entry[config.Agent], error) { return s.GetAgent(ctx, n) },
	put: func(ctx context.Context, s Store, v config.Agent, m ChangeMeta) (Change[config.Agent], error) {
		return s.PutAgent(ctx, v, m)
	},
	del: func(ctx context.Context, s Store, n string, m ChangeMeta) (Change[config.Agent], error) {
		return s.DeleteAgent(ctx, n, m)
	},
}

var backendOps = objectOps[config.Backend]{
	kind: audit.ObjectBackend, make: testBackend,
	list: func(ctx context.Context, s Store) ([]Entry[config.Backend], error) { return s.ListBackends(ctx) },
	get: func(ctx context.Context, s Store, n string) (Entry[config.Backend], error) {
		return s.GetBackend(ctx, n)
	},
	put: func(ctx context.Context, s Store, v config.Backend, m ChangeMeta) (Change[config.Backend], error) {
		return s.PutBackend(ctx, v, m)
	},
	del: func(ctx context.Context, s Store, n string, m ChangeMeta) (Change[config.Backend], error) {
		return s.DeleteBackend(ctx, n, m)
	},
}

type conformanceCase struct {
	name       string
	sharedOnly bool // needs two Opens of one database
	run        func(t *testing.T, b dbUnderTest)
}

func TestConformance(t *testing.T) {
	cases := []conformanceCase{
		{name: "agent CRUD", run: func(t *testing.T, b dbUnderTest) { testCRUD(t, openTest(t, b.newDSN(t)), agentOps) }},
		{name: "backend CRUD", run: func(t *testing.T, b dbUnderTest) { testCRUD(t, openTest(t, b.newDSN(t)), backendOps) }},
		{name: "not found and bad names", run: testNotFound},
		{name: "revision bumps", run: testRevision},
		{name: "seed precedence", run: testSeed},
		{name: "seed revokes entries the file drops", run: testSeedRevokes},
		{name: "audit filters", run: testAuditFilters},
		{name: "audit paging", run: testAuditPaging},
		{name: "audit round trip", run: testAuditRoundTrip},
		{name: "audit invalid and duplicate", run: testAuditInvalid},
		{name: "audit limit", run: testAuditLimit},
		{name: "no secret in audit", run: testNoSecretInAudit},
		{name: "audit store sink", run: testStoreSink},
		{name: "confirmations", run: testConfirmations},
		{name: "reopen is idempotent", sharedOnly: true, run: testReopen},
		{name: "second handle sees changes", sharedOnly: true, run: testSecondHandle},
		{name: "concurrent opens", sharedOnly: true, run: testConcurrentOpen},
		{name: "concurrent writers", sharedOnly: true, run: testConcurrentWriters},
		{name: "newer schema refused", sharedOnly: true, run: testNewerSchema},
		{name: "issuer column added to an existing trail", sharedOnly: true, run: testAuditIssuerMigration},
	}
	runOnEveryDatabase(t, cases)
}

// runOnEveryDatabase runs each case on every database under test (the
// shared-only ones where several handles reach one database).
func runOnEveryDatabase(t *testing.T, cases []conformanceCase) {
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range cases {
				if c.sharedOnly && !b.shared {
					continue
				}
				t.Run(c.name, func(t *testing.T) { c.run(t, b) })
			}
		})
	}
}

func testCRUD[T any](t *testing.T, s Store, ops objectOps[T]) {
	ctx := context.Background()
	v1, v2, other := ops.make("alpha", 1), ops.make("alpha", 2), ops.make("beta", 1)

	ch, err := ops.put(ctx, s, v1, adminMeta)
	if err != nil {
		t.Fatalf("put new: %v", err)
	}
	if ch.Before != nil {
		t.Errorf("put new: Before = %+v, want nil", *ch.Before)
	}
	checkChange(t, ch.Audit, audit.ActionCreate, ops.kind, "alpha", false, true)

	e, err := ops.get(ctx, s, "alpha")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if !reflect.DeepEqual(e.Value, v1) {
		t.Errorf("get:\n got  %+v\n want %+v", e.Value, v1)
	}
	if e.Source != SourceAdmin || e.UpdatedBy != adminMeta.Subject || e.Version != mustRevision(t, s) {
		t.Errorf("entry meta = source %q by %q version %d, want admin, %q, %d", e.Source, e.UpdatedBy, e.Version, adminMeta.Subject, mustRevision(t, s))
	}
	if d := time.Since(e.UpdatedAt); d < 0 || d > time.Minute {
		t.Errorf("UpdatedAt = %v, not just now", e.UpdatedAt)
	}

	ch, err = ops.put(ctx, s, v2, adminMeta)
	if err != nil {
		t.Fatalf("put update: %v", err)
	}
	if ch.Before == nil || !reflect.DeepEqual(*ch.Before, v1) {
		t.Errorf("put update: Before = %s, want v1", describe(ch.Before))
	}
	checkChange(t, ch.Audit, audit.ActionUpdate, ops.kind, "alpha", true, true)
	if e, err = ops.get(ctx, s, "alpha"); err != nil || !reflect.DeepEqual(e.Value, v2) {
		t.Errorf("get after update = %+v, %v; want v2", e.Value, err)
	}

	if _, err := ops.put(ctx, s, other, adminMeta); err != nil {
		t.Fatalf("put beta: %v", err)
	}
	entries, err := ops.list(ctx, s)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if got := entryNames(entries); !slices.Equal(got, []string{"alpha", "beta"}) {
		t.Errorf("list names = %v, want [alpha beta]", got)
	}

	ch, err = ops.del(ctx, s, "alpha", adminMeta)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if ch.Before == nil || !reflect.DeepEqual(*ch.Before, v2) {
		t.Errorf("delete: Before = %s, want v2", describe(ch.Before))
	}
	checkChange(t, ch.Audit, audit.ActionDelete, ops.kind, "alpha", true, false)
	if _, err := ops.get(ctx, s, "alpha"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get deleted: err = %v, want ErrNotFound", err)
	}
	if _, err := ops.del(ctx, s, "alpha", adminMeta); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: err = %v, want ErrNotFound", err)
	}
	if entries, _ = ops.list(ctx, s); !slices.Equal(entryNames(entries), []string{"beta"}) {
		t.Errorf("list after delete = %v, want [beta]", entryNames(entries))
	}

	// Each change wrote its audit record in the same transaction.
	recs, _, err := s.QueryAudit(ctx, audit.Query{Kind: audit.KindChange})
	if err != nil {
		t.Fatalf("query changes: %v", err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Action)+" "+r.ObjectName)
	}
	want := []string{"delete alpha", "create beta", "update alpha", "create alpha"}
	if !slices.Equal(got, want) {
		t.Errorf("change records (newest first) = %v, want %v", got, want)
	}
	if len(recs) > 0 && recs[0].ID != ch.Audit.ID {
		t.Errorf("newest change record id %s, want the one Delete returned (%s)", recs[0].ID, ch.Audit.ID)
	}
}

func checkChange(t *testing.T, r audit.Record, action audit.Action, kind audit.ObjectKind, name string, before, after bool) {
	t.Helper()
	if r.ID == "" || r.Time.IsZero() || r.Kind != audit.KindChange || r.Action != action || r.ObjectKind != kind ||
		r.ObjectName != name || r.Source != audit.SourceAdmin || !r.Allow {
		t.Errorf("change record = %+v, want %s %s %q from admin", r, action, kind, name)
	}
	if r.Subject != adminMeta.Subject || r.Issuer != adminMeta.Issuer || r.Agent != adminMeta.Agent || r.DecisionID != adminMeta.DecisionID ||
		r.Revision != adminMeta.Revision || r.RequestID != adminMeta.RequestID {
		t.Errorf("change record does not carry ChangeMeta: %+v", r)
	}
	if (len(r.Before) > 0) != before || (len(r.After) > 0) != after {
		t.Errorf("change record before/after present = %v/%v, want %v/%v", len(r.Before) > 0, len(r.After) > 0, before, after)
	}
	for _, raw := range []json.RawMessage{r.Before, r.After} {
		if len(raw) > 0 && !strings.Contains(string(raw), secrets.Placeholder) {
			t.Errorf("snapshot %s shows no redaction marker", raw)
		}
	}
}

func renamed(a config.Agent, name string) config.Agent {
	a.Name = name
	return a
}

func entryNames[T any](es []Entry[T]) []string {
	var out []string
	for _, e := range es {
		switch v := any(e.Value).(type) {
		case config.Agent:
			out = append(out, v.Name)
		case config.Backend:
			out = append(out, v.Name)
		}
	}
	return out
}

func testNotFound(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	rev := mustRevision(t, s)
	notFound := []struct {
		name string
		call func() error
	}{
		{"get agent", func() error { _, err := s.GetAgent(ctx, "ghost"); return err }},
		{"get backend", func() error { _, err := s.GetBackend(ctx, "ghost"); return err }},
		{"delete agent", func() error { _, err := s.DeleteAgent(ctx, "ghost", adminMeta); return err }},
		{"delete backend", func() error { _, err := s.DeleteBackend(ctx, "ghost", adminMeta); return err }},
	}
	for _, c := range notFound {
		err := c.call()
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"ghost"`) {
			t.Errorf("%s: err = %v, want ErrNotFound naming \"ghost\"", c.name, err)
		}
	}
	badNames := []struct{ name, value, wantSub string }{
		{"empty", "", "empty"},
		{"control character", "a\nb", "control"},
		{"too long", strings.Repeat("x", maxNameLen+1), "longer"},
		{"invalid utf-8", "a\xffb", "UTF-8"},
	}
	for _, c := range badNames {
		if _, err := s.PutAgent(ctx, testAgent(c.value, 1), adminMeta); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), c.wantSub) {
			t.Errorf("put agent with %s name: err = %v, want one mentioning %q", c.name, err, c.wantSub)
		}
		if _, err := s.PutBackend(ctx, testBackend(c.value, 1), adminMeta); err == nil || !strings.Contains(err.Error(), c.wantSub) {
			t.Errorf("put backend with %s name: err = %v, want one mentioning %q", c.name, err, c.wantSub)
		}
	}
	if got := mustRevision(t, s); got != rev {
		t.Errorf("failed calls moved the revision from %d to %d", rev, got)
	}
	if n := countRows(t, s, "audit_records"); n != 0 {
		t.Errorf("failed calls wrote %d audit records", n)
	}
}

func testRevision(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	if r := mustRevision(t, s); r != 0 {
		t.Fatalf("fresh store revision = %d, want 0", r)
	}
	steps := []struct {
		name  string
		do    func() error
		delta int64
	}{
		{"put agent", func() error { _, err := s.PutAgent(ctx, testAgent("a", 1), adminMeta); return err }, 1},
		{"put same agent again", func() error { _, err := s.PutAgent(ctx, testAgent("a", 1), adminMeta); return err }, 1},
		{"put backend", func() error { _, err := s.PutBackend(ctx, testBackend("b", 1), adminMeta); return err }, 1},
		{"delete agent", func() error { _, err := s.DeleteAgent(ctx, "a", adminMeta); return err }, 1},
		{"delete missing agent", func() error { _, _ = s.DeleteAgent(ctx, "a", adminMeta); return nil }, 0},
		{"append audit", func() error {
			return s.AppendAudit(ctx, audit.Record{Kind: audit.KindDecision, Subject: "x"})
		}, 0},
		{"seed three entries", func() error {
			return s.SeedFromConfig(ctx, &config.Config{
				Agents:   map[string]config.Agent{"c1": testAgent("", 1), "c2": testAgent("", 2)},
				Backends: map[string]config.Backend{"b": testBackend("", 3)},
			})
		}, 1},
		{"seed the same again", func() error {
			return s.SeedFromConfig(ctx, &config.Config{
				Agents:   map[string]config.Agent{"c1": testAgent("", 1), "c2": testAgent("", 2)},
				Backends: map[string]config.Backend{"b": testBackend("", 3)},
			})
		}, 0},
	}
	for _, st := range steps {
		before := mustRevision(t, s)
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := mustRevision(t, s); got != before+st.delta {
			t.Errorf("%s: revision %d -> %d, want +%d", st.name, before, got, st.delta)
		}
	}
	e, err := s.GetBackend(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if e.Version != mustRevision(t, s) {
		t.Errorf("backend b version = %d, want the seed's revision %d", e.Version, mustRevision(t, s))
	}
}

func testSeed(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	// Before the start: an admin created "admin-only" and edited "shared",
	// which the config file also names.
	if _, err := s.PutAgent(ctx, testAgent("admin-only", 1), adminMeta); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutAgent(ctx, testAgent("shared", 9), adminMeta); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBackend(ctx, testBackend("shared-backend", 9), adminMeta); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Agents: map[string]config.Agent{
			// The map key names the entry, whatever the Name field says.
			"shared":   renamed(testAgent("shared", 1), "ignored"),
			"file-new": renamed(testAgent("file-new", 2), ""),
		},
		Backends: map[string]config.Backend{"shared-backend": testBackend("shared-backend", 1)},
	}
	wantAgents := map[string]struct {
		value  config.Agent
		source Source
	}{
		"admin-only": {testAgent("admin-only", 1), SourceAdmin},
		"shared":     {testAgent("shared", 1), SourceConfig},
		"file-new":   {testAgent("file-new", 2), SourceConfig},
	}
	check := func(stage string) {
		t.Helper()
		entries, err := s.ListAgents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(wantAgents) {
			t.Errorf("%s: %d agents (%v), want %d", stage, len(entries), entryNames(entries), len(wantAgents))
		}
		for _, e := range entries {
			w, ok := wantAgents[e.Value.Name]
			if !ok {
				t.Errorf("%s: unexpected agent %q", stage, e.Value.Name)
				continue
			}
			if !reflect.DeepEqual(e.Value, w.value) || e.Source != w.source {
				t.Errorf("%s: agent %q = %+v (source %s), want %+v (source %s)", stage, e.Value.Name, e.Value, e.Source, w.value, w.source)
			}
		}
		be, err := s.GetBackend(ctx, "shared-backend")
		if err != nil || be.Source != SourceConfig || !reflect.DeepEqual(be.Value, testBackend("shared-backend", 1)) {
			t.Errorf("%s: backend = %+v (%s), %v; want the config file's", stage, be.Value, be.Source, err)
		}
	}

	if err := s.SeedFromConfig(ctx, cfg); err != nil {
		t.Fatalf("seed: %v", err)
	}
	check("first start")
	changes, _, err := s.QueryAudit(ctx, audit.Query{Kind: audit.KindChange, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var seeded []string
	for _, r := range changes {
		if r.Source == audit.SourceConfig {
			seeded = append(seeded, string(r.Action)+" "+string(r.ObjectKind)+" "+r.ObjectName)
		}
	}
	slices.Sort(seeded)
	if want := []string{"create agent file-new", "update agent shared", "update backend shared-backend"}; !slices.Equal(seeded, want) {
		t.Errorf("seed change records = %v, want %v", seeded, want)
	}

	// The admin edits the file's entry again; the next start restores the
	// file's version: the config file wins at every start.
	if _, err := s.PutAgent(ctx, testAgent("shared", 5), adminMeta); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.GetAgent(ctx, "shared"); e.Source != SourceAdmin || e.Value.Description != testAgent("shared", 5).Description {
		t.Fatalf("admin edit did not apply: %+v", e)
	}
	if err := s.SeedFromConfig(ctx, cfg); err != nil {
		t.Fatalf("second seed: %v", err)
	}
	check("second start")

	if err := s.SeedFromConfig(ctx, nil); err == nil {
		t.Error("seed with nil config: want error")
	}
}

func testSeedRevokes(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	first := &config.Config{
		Agents:   map[string]config.Agent{"keep": testAgent("", 1), "drop": testAgent("", 1)},
		Backends: map[string]config.Backend{"old": testBackend("", 1)},
	}
	if err := s.SeedFromConfig(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBackend(ctx, testBackend("admin-made", 1), adminMeta); err != nil {
		t.Fatal(err)
	}
	second := &config.Config{Agents: map[string]config.Agent{"keep": testAgent("", 1)}}
	if err := s.SeedFromConfig(ctx, second); err != nil {
		t.Fatal(err)
	}
	agents, _ := s.ListAgents(ctx)
	backends, _ := s.ListBackends(ctx)
	if got := entryNames(agents); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("agents = %v, want [keep]: an entry the file no longer lists must be removed", got)
	}
	if got := entryNames(backends); !slices.Equal(got, []string{"admin-made"}) {
		t.Errorf("backends = %v, want [admin-made]: admin entries survive, file entries go", got)
	}
	recs, _, err := s.QueryAudit(ctx, audit.Query{Kind: audit.KindChange, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Action != audit.ActionDelete || r.Source != audit.SourceConfig || len(r.Before) == 0 {
			t.Errorf("revocation record = %+v, want a config delete with before", r)
		}
	}
}

// auditFixture is a set of records one second apart, oldest first.
func auditFixture(base time.Time) []audit.Record {
	mk := func(i int, r audit.Record) audit.Record {
		r.ID = fmt.Sprintf("rec-%02d", i)
		r.Time = base.Add(time.Duration(i) * time.Second)
		return r
	}
	return []audit.Record{
		mk(0, audit.Record{Kind: audit.KindDecision, Subject: "alice", Agent: "cursor", Backend: "employees", Method: "tools/call", Tool: "get_employee", Allow: true}),
		mk(1, audit.Record{Kind: audit.KindDecision, Subject: "bob", Agent: "cursor", Backend: "employees", Method: "tools/call", Tool: "delete_employee", Allow: false, Reasons: []string{"role"}}),
		mk(2, audit.Record{Kind: audit.KindDecision, Subject: "alice", Agent: "claude", Backend: "payroll", Method: "tools/list", Allow: true}),
		mk(3, audit.Record{Kind: audit.KindChange, Subject: "admin", Agent: "admin-cli", Allow: true, Action: audit.ActionUpdate, ObjectKind: audit.ObjectBackend, ObjectName: "employees", Source: audit.SourceAdmin}),
		mk(4, audit.Record{Kind: audit.KindChange, Subject: "admin", Agent: "admin-cli", Allow: true, Action: audit.ActionCreate, ObjectKind: audit.ObjectAgent, ObjectName: "cursor", Source: audit.SourceAdmin}),
		mk(5, audit.Record{Kind: audit.KindDecision, Subject: "bob", Agent: "claude", Backend: "payroll", Method: "tools/call", Tool: "pay", Allow: false}),
	}
}

func testAuditFilters(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.AppendAudit(ctx, auditFixture(base)...); err != nil {
		t.Fatalf("append: %v", err)
	}
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	tests := []struct {
		name string
		q    audit.Query
		want []int // record numbers, newest first
	}{
		{"all", audit.Query{}, []int{5, 4, 3, 2, 1, 0}},
		{"decisions", audit.Query{Kind: audit.KindDecision}, []int{5, 2, 1, 0}},
		{"changes", audit.Query{Kind: audit.KindChange}, []int{4, 3}},
		{"subject", audit.Query{Subject: "alice"}, []int{2, 0}},
		{"agent includes changes to it", audit.Query{Agent: "cursor"}, []int{4, 1, 0}},
		{"agent acting", audit.Query{Agent: "admin-cli"}, []int{4, 3}},
		{"backend includes changes to it", audit.Query{Backend: "employees"}, []int{3, 1, 0}},
		{"deny", audit.Query{Decision: audit.DecisionDeny}, []int{5, 1}},
		{"allow", audit.Query{Decision: audit.DecisionAllow}, []int{4, 3, 2, 0}},
		{"since inclusive", audit.Query{Since: at(4)}, []int{5, 4}},
		{"until exclusive", audit.Query{Until: at(2)}, []int{1, 0}},
		{"window", audit.Query{Since: at(1), Until: at(4)}, []int{3, 2, 1}},
		{"combined", audit.Query{Kind: audit.KindDecision, Subject: "bob", Backend: "payroll", Decision: audit.DecisionDeny}, []int{5}},
		{"nothing", audit.Query{Subject: "nobody"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, next, err := s.QueryAudit(ctx, tc.q)
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			if next != "" {
				t.Errorf("next = %q on a single page", next)
			}
			var got []int
			for _, r := range recs {
				var n int
				fmt.Sscanf(r.ID, "rec-%d", &n)
				got = append(got, n)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	invalid := []struct {
		name string
		q    audit.Query
	}{
		{"decision", audit.Query{Decision: "maybe"}},
		{"kind", audit.Query{Kind: "other"}},
		{"limit", audit.Query{Limit: -1}},
		{"window", audit.Query{Since: at(3), Until: at(1)}},
		{"cursor garbage", audit.Query{Cursor: "!!!"}},
		{"cursor wrong version", audit.Query{Cursor: audit.EncodeCursor(1, "x")[:4]}},
	}
	for _, tc := range invalid {
		if _, _, err := s.QueryAudit(ctx, tc.q); !errors.Is(err, audit.ErrInvalidQuery) {
			t.Errorf("invalid %s: err = %v, want ErrInvalidQuery", tc.name, err)
		}
	}
}

func testAuditPaging(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var recs []audit.Record
	for i := range 25 {
		// Groups of three share a timestamp: the id breaks the tie.
		recs = append(recs, audit.Record{ID: fmt.Sprintf("r%02d", i), Time: base.Add(time.Duration(i/3) * time.Millisecond),
			Kind: audit.KindDecision, Subject: "pager", Allow: i%2 == 0})
	}
	if err := s.AppendAudit(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		got, next, err := s.QueryAudit(ctx, audit.Query{Subject: "pager", Limit: 10, Cursor: cursor})
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		for _, r := range got {
			seen = append(seen, r.ID)
		}
		if page == 0 {
			// Records appended between pages, newer or as old as the
			// first page, must not shift the pages that follow.
			late := []audit.Record{
				{ID: "late-new", Time: base.Add(time.Hour), Kind: audit.KindDecision, Subject: "pager"},
				{ID: "r99", Time: base.Add(8 * time.Millisecond), Kind: audit.KindDecision, Subject: "pager"},
			}
			if err := s.AppendAudit(ctx, late...); err != nil {
				t.Fatal(err)
			}
		}
		if next == "" {
			if len(got) != 5 || page != 2 {
				t.Errorf("last page %d has %d records, want page 2 with 5", page, len(got))
			}
			break
		}
		if len(got) != 10 {
			t.Errorf("page %d has %d records, want 10", page, len(got))
		}
		cursor = next
		if page > 5 {
			t.Fatal("paging does not end")
		}
	}
	var want []string
	for i := 24; i >= 0; i-- {
		want = append(want, fmt.Sprintf("r%02d", i))
	}
	if !slices.Equal(seen, want) {
		t.Errorf("pages gave\n %v\nwant\n %v", seen, want)
	}
}

func testAuditRoundTrip(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	in := []audit.Record{
		{ID: "d1", Time: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600)), Kind: audit.KindDecision,
			DecisionID: "dec-9", RequestID: "req-9", Subject: "alice", Issuer: "https://idp-b.example.com", Agent: "cursor", Backend: "employees",
			Method: "tools/call", Tool: "get_employee", Allow: false, Reasons: []string{"tool not allowed", "ünïcode"},
			Revision: "rev-3", LatencyMS: 12.5, Outcome: "ok", EvalMicros: 37},
		{ID: "c1", Time: time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC), Kind: audit.KindChange, Subject: "admin", Issuer: "https://idp-a.example.com",
			Allow: true, Source: audit.SourceAdmin, Action: audit.ActionUpdate, ObjectKind: audit.ObjectBackend,
			ObjectName: "employees", Before: json.RawMessage(`{"url": "https://a", "paths": ["/a"]}`),
			After: json.RawMessage(`{"url":"https://b","labels":{"k":"v"}}`)},
	}
	if err := s.AppendAudit(ctx, in...); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.QueryAudit(ctx, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d records, want 2", len(got))
	}
	byID := map[string]audit.Record{got[0].ID: got[0], got[1].ID: got[1]}
	for _, w := range in {
		w = w.Normalize()
		g := byID[w.ID]
		if !g.Time.Equal(w.Time) || g.Time.Location() != time.UTC {
			t.Errorf("%s time = %v, want %v in UTC", w.ID, g.Time, w.Time)
		}
		jsonEq(t, w.ID+" before", g.Before, w.Before)
		jsonEq(t, w.ID+" after", g.After, w.After)
		g.Time, w.Time = time.Time{}, time.Time{}
		g.Before, g.After, w.Before, w.After = nil, nil, nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("round trip of %s:\n got  %+v\n want %+v", w.ID, g, w)
		}
	}
	if got[1].Time.Nanosecond()%1000 != 0 {
		t.Errorf("time not truncated to microseconds: %v", got[1].Time)
	}
}

func jsonEq(t *testing.T, what string, got, want json.RawMessage) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s: stored JSON %q does not parse: %v", what, got, err)
		return
	}
	_ = json.Unmarshal(want, &w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func testAuditInvalid(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	good := audit.Record{ID: "good", Kind: audit.KindDecision}
	bad := []audit.Record{
		{Kind: "bogus"},
		{Kind: audit.KindChange, Action: audit.ActionCreate, ObjectKind: audit.ObjectAgent},
		{Kind: audit.KindChange, Action: "rename", ObjectKind: audit.ObjectAgent, ObjectName: "x"},
		{Kind: audit.KindChange, Action: audit.ActionCreate, ObjectKind: audit.ObjectAgent, ObjectName: "x", After: json.RawMessage(`{`)},
	}
	for i, r := range bad {
		if err := s.AppendAudit(ctx, good, r); !errors.Is(err, audit.ErrInvalidRecord) {
			t.Errorf("bad record %d: err = %v, want ErrInvalidRecord", i, err)
		}
	}
	if n := countRows(t, s, "audit_records"); n != 0 {
		t.Errorf("a batch with an invalid record stored %d rows, want none", n)
	}
	for range 2 {
		if err := s.AppendAudit(ctx, good); err != nil {
			t.Fatal(err)
		}
	}
	if n := countRows(t, s, "audit_records"); n != 1 {
		t.Errorf("appending one id twice stored %d rows, want 1", n)
	}
	if err := s.AppendAudit(ctx); err != nil {
		t.Errorf("empty append: %v", err)
	}
}

func testAuditLimit(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	recs := make([]audit.Record, audit.MaxLimit+5)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range recs {
		recs[i] = audit.Record{Time: base.Add(time.Duration(i) * time.Microsecond), Kind: audit.KindDecision, Subject: "bulk"}
	}
	if err := s.AppendAudit(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		limit, want int
		more        bool
	}{{0, audit.DefaultLimit, true}, {7, 7, true}, {5000, audit.MaxLimit, true}} {
		got, next, err := s.QueryAudit(ctx, audit.Query{Limit: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want || (next != "") != tc.more {
			t.Errorf("limit %d: %d records, next %q; want %d, more=%v", tc.limit, len(got), next, tc.want, tc.more)
		}
	}
}

func testNoSecretInAudit(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	if _, err := s.PutAgent(ctx, testAgent("a", 1), adminMeta); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutAgent(ctx, testAgent("a", 2), adminMeta); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBackend(ctx, testBackend("b", 1), adminMeta); err != nil {
		t.Fatal(err)
	}
	if err := s.SeedFromConfig(ctx, &config.Config{Backends: map[string]config.Backend{"b": testBackend("b", 2)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteBackend(ctx, "b", adminMeta); err != nil {
		t.Fatal(err)
	}
	recs, _, err := s.QueryAudit(ctx, audit.Query{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 {
		t.Fatalf("%d change records, want 5", len(recs))
	}
	dump, _ := json.Marshal(recs)
	for _, secret := range allSecrets {
		if strings.Contains(string(dump), secret) {
			t.Errorf("audit trail contains secret %q", secret)
		}
	}
	// The store itself keeps the secrets: the gateway needs them.
	e, err := s.GetAgent(ctx, "a")
	if err != nil || e.Value.ClientSecret != agentSecret || e.Value.PrivateKey != agentKey {
		t.Errorf("stored agent lost its secrets: %+v, %v", e.Value, err)
	}
}

func testReopen(t *testing.T, b dbUnderTest) {
	dsn := b.newDSN(t)
	ctx := context.Background()
	s1, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.PutAgent(ctx, testAgent("kept", 1), adminMeta); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, dsn)
	if _, err := s2.GetAgent(ctx, "kept"); err != nil {
		t.Errorf("after reopen: %v", err)
	}
	if got, want := countRows(t, s2, "schema_migrations"), migrationCount(t, s2.(*sqlStore).d); got != want {
		t.Errorf("schema_migrations has %d rows after two opens, want %d", got, want)
	}
	if err := s2.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func testSecondHandle(t *testing.T, b dbUnderTest) {
	dsn := b.newDSN(t)
	ctx := context.Background()
	s1, s2 := openTest(t, dsn), openTest(t, dsn)
	r0 := mustRevision(t, s2)
	if _, err := s1.PutBackend(ctx, testBackend("shared", 1), adminMeta); err != nil {
		t.Fatal(err)
	}
	if r1 := mustRevision(t, s2); r1 <= r0 {
		t.Fatalf("second handle's revision %d did not move past %d", r1, r0)
	}
	e, err := s2.GetBackend(ctx, "shared")
	if err != nil || !reflect.DeepEqual(e.Value, testBackend("shared", 1)) {
		t.Errorf("second handle reads %+v, %v", e.Value, err)
	}
	if err := s2.AppendAudit(ctx, audit.Record{ID: "from-s2", Kind: audit.KindDecision}); err != nil {
		t.Fatal(err)
	}
	if recs, _, err := s1.QueryAudit(ctx, audit.Query{Kind: audit.KindDecision}); err != nil || len(recs) != 1 || recs[0].ID != "from-s2" {
		t.Errorf("first handle sees audit %+v, %v; want from-s2", recs, err)
	}
}

func testConcurrentOpen(t *testing.T, b dbUnderTest) {
	dsn := b.newDSN(t)
	const n = 4
	var (
		wg     sync.WaitGroup
		stores [n]Store
		errs   [n]error
		start  = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = Open(context.Background(), dsn)
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("open %d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	if t.Failed() {
		return
	}
	if got, want := countRows(t, stores[0], "schema_migrations"), migrationCount(t, stores[0].(*sqlStore).d); got != want {
		t.Errorf("schema_migrations has %d rows after %d concurrent opens, want %d", got, n, want)
	}
}

func testConcurrentWriters(t *testing.T, b dbUnderTest) {
	dsn := b.newDSN(t)
	ctx := context.Background()
	handles := []Store{openTest(t, dsn), openTest(t, dsn)}
	const per = 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*per)
	for h, s := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, err := s.PutAgent(ctx, testAgent(fmt.Sprintf("h%d-%02d", h, i), i), adminMeta); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent put: %v", err)
	}
	if r := mustRevision(t, handles[0]); r != 2*per {
		t.Errorf("revision = %d after %d puts, want %d", r, 2*per, 2*per)
	}
	entries, err := handles[1].ListAgents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	versions := map[int64]bool{}
	for _, e := range entries {
		versions[e.Version] = true
	}
	if len(entries) != 2*per || len(versions) != 2*per {
		t.Errorf("%d agents with %d distinct versions, want %d of each", len(entries), len(versions), 2*per)
	}
}

func testNewerSchema(t *testing.T, b dbUnderTest) {
	dsn := b.newDSN(t)
	s := openTest(t, dsn)
	_, err := s.(*sqlStore).db.ExecContext(context.Background(),
		"INSERT INTO schema_migrations (version, name, applied_us) VALUES (9999, '9999_future.sql', 0)")
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(context.Background(), dsn); err == nil {
		_ = s2.Close()
		t.Fatal("opened a database with an unknown, newer schema version")
	} else if !strings.Contains(err.Error(), "9999") {
		t.Errorf("error %v does not name the version", err)
	}
}

// testAuditIssuerMigration upgrades a database whose audit trail predates
// the issuer column (0003): the schema is put back as 0002 left it, with a
// record in it, and the next Open adds the column, keeping the record.
func testAuditIssuerMigration(t *testing.T, b dbUnderTest) {
	dsn := b.newDSN(t)
	ctx := context.Background()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := s.(*sqlStore).db
	for _, stmt := range []string{
		"DROP INDEX audit_records_issuer_subject_at",
		"ALTER TABLE audit_records DROP COLUMN issuer",
		"DELETE FROM schema_migrations WHERE version = 3",
		`INSERT INTO audit_records (id, at_us, kind, subject, allow) VALUES ('old-1', 1767225600000000, 'decision', 'alice', false)`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	_ = s.Close()

	s = openTest(t, dsn)
	if err := s.AppendAudit(ctx, audit.Record{ID: "new-1", Kind: audit.KindDecision, Subject: "alice", Issuer: "https://idp.example.com"}); err != nil {
		t.Fatal(err)
	}
	recs, _, err := s.QueryAudit(ctx, audit.Query{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	issuers := map[string]string{}
	for _, r := range recs {
		issuers[r.ID] = r.Issuer
	}
	if want := map[string]string{"old-1": "", "new-1": "https://idp.example.com"}; !reflect.DeepEqual(issuers, want) {
		t.Errorf("issuers after the upgrade = %v, want %v", issuers, want)
	}
}

func testStoreSink(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	sink := audit.NewStoreSink(s, audit.BatchOptions{MaxBatch: 50})
	const n = 420
	for i := range n {
		sink.Write(ctx, audit.Record{Kind: audit.KindDecision, Subject: "sink", Tool: fmt.Sprint(i), Allow: true})
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if sink.Written() != n || sink.Dropped() != 0 {
		t.Fatalf("Written %d Dropped %d, want %d 0", sink.Written(), sink.Dropped(), n)
	}
	recs, next, err := s.QueryAudit(ctx, audit.Query{Subject: "sink", Limit: audit.MaxLimit})
	if err != nil || len(recs) != n || next != "" {
		t.Fatalf("stored %d records (next %q, err %v), want %d", len(recs), next, err, n)
	}
}
