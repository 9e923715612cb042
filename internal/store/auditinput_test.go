package store

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
)

// Recorded policy inputs (migration 0006) on SQLite and PostgreSQL.
func TestAuditInputConformance(t *testing.T) {
	runOnEveryDatabase(t, []conformanceCase{
		{name: "input round trip, only when asked", run: testAuditInputRoundTrip},
		{name: "only decisions keep an input", run: testAuditInputOnlyDecisions},
		{name: "expired inputs cleared, records kept", run: testAuditInputPurge},
		{name: "tool filter", run: testAuditToolFilter},
		{name: "input columns added to an existing trail", sharedOnly: true, run: testAuditInputMigration},
	})
}

// An input with what the policy must read back exactly: a number a double
// cannot hold, non-ASCII and bidi text, an empty object, nesting.
const recordedInput = `{"version":1,"token":{"sub":"al\u202eice","groups":["mcp-viewers"]},` +
	`"mcp":{"kind":"request","method":"tools/call","tool":"get_ünï","arguments":{"n":12345678901234567890,"s":"😀\u0000x","e":{}}}}`

func testAuditInputRoundTrip(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	recs := []audit.Record{
		{ID: "with", Time: at(time.Second), Kind: audit.KindDecision, DecisionID: "d1", Subject: "alice", Backend: "notes",
			Tool: "get_ünï", Allow: true, Input: json.RawMessage(recordedInput), InputMasked: []string{"/input/token/claims"}},
		{ID: "without", Time: at(2 * time.Second), Kind: audit.KindDecision, DecisionID: "d2", Subject: "alice", Backend: "notes", Allow: true},
	}
	if err := s.AppendAudit(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	plain, _, err := s.QueryAudit(ctx, audit.Query{})
	if err != nil || len(plain) != 2 {
		t.Fatalf("query: %d records, %v", len(plain), err)
	}
	for _, r := range plain {
		if r.Input != nil || r.InputMasked != nil {
			t.Errorf("%s: input returned without IncludeInput: %s %v", r.ID, r.Input, r.InputMasked)
		}
	}
	got, _, err := s.QueryAudit(ctx, audit.Query{IncludeInput: true})
	if err != nil || len(got) != 2 {
		t.Fatalf("query: %d records, %v", len(got), err)
	}
	byID := map[string]audit.Record{got[0].ID: got[0], got[1].ID: got[1]}
	with := byID["with"]
	for _, c := range with.Input {
		if c >= 0x80 {
			t.Fatalf("stored input is not ASCII: %s", with.Input)
		}
	}
	if !json.Valid(with.Input) {
		t.Fatalf("stored input is not JSON: %s", with.Input)
	}
	// Decoded with exact numbers, the stored input is the recorded one.
	decode := func(raw []byte) any {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if g, w := decode(with.Input), decode([]byte(recordedInput)); !reflect.DeepEqual(g, w) {
		t.Errorf("input read back as %v, want %v", g, w)
	}
	if !slices.Equal(with.InputMasked, []string{"/input/token/claims"}) {
		t.Errorf("input_masked = %v", with.InputMasked)
	}
	if r := byID["without"]; r.Input != nil || r.InputMasked != nil {
		t.Errorf("a record without input reads back with %s %v", r.Input, r.InputMasked)
	}
}

func testAuditInputOnlyDecisions(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	for _, r := range []audit.Record{
		{ID: "c", Kind: audit.KindChange, Action: audit.ActionCreate, ObjectKind: audit.ObjectAgent, ObjectName: "a", Input: json.RawMessage(`{}`)},
		{ID: "s", Kind: audit.KindShadow, InputMasked: []string{"/input"}},
		{ID: "bad", Kind: audit.KindDecision, Input: json.RawMessage(`{"a":`)},
	} {
		if err := s.AppendAudit(ctx, r); !errors.Is(err, audit.ErrInvalidRecord) {
			t.Errorf("%s: AppendAudit = %v, want ErrInvalidRecord", r.ID, err)
		}
	}
}

func testAuditInputPurge(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	in := json.RawMessage(`{"version":1}`)
	if err := s.AppendAudit(ctx,
		audit.Record{ID: "old", Time: at(time.Second), Kind: audit.KindDecision, Backend: "notes", Input: in, InputMasked: []string{"/input/mcp/arguments"}},
		audit.Record{ID: "new", Time: at(time.Hour), Kind: audit.KindDecision, Backend: "notes", Input: in},
	); err != nil {
		t.Fatal(err)
	}
	n, err := s.PurgeAuditInputs(ctx, at(time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("PurgeAuditInputs = %d, %v; want 1", n, err)
	}
	if n, err := s.PurgeAuditInputs(ctx, at(time.Minute)); err != nil || n != 0 {
		t.Fatalf("second PurgeAuditInputs = %d, %v; want 0", n, err)
	}
	got, _, err := s.QueryAudit(ctx, audit.Query{IncludeInput: true})
	if err != nil || len(got) != 2 {
		t.Fatalf("records after the purge: %d, %v; want both kept", len(got), err)
	}
	for _, r := range got {
		if has := r.Input != nil || r.InputMasked != nil; has != (r.ID == "new") {
			t.Errorf("%s: input %s masked %v after the purge", r.ID, r.Input, r.InputMasked)
		}
	}
}

func testAuditToolFilter(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	if err := s.AppendAudit(ctx,
		audit.Record{ID: "a", Kind: audit.KindDecision, Backend: "notes", Tool: "echo"},
		audit.Record{ID: "b", Kind: audit.KindDecision, Backend: "notes", Tool: "read_file"},
	); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.QueryAudit(ctx, audit.Query{Tool: "echo"})
	if err != nil || len(got) != 1 || got[0].ID != "a" {
		t.Fatalf("Tool filter: %+v, %v", got, err)
	}
}

// A trail as 0005 left it takes the columns in place: its records stay,
// without input, and new records keep theirs.
func testAuditInputMigration(t *testing.T, b dbUnderTest) {
	dsn := b.newDSN(t)
	ctx := context.Background()
	old := openAtMigration(t, dsn, 5)
	if err := old.AppendAudit(ctx, audit.Record{ID: "old", Time: at(time.Second), Kind: audit.KindDecision, Backend: "notes", Allow: true}); err != nil {
		t.Fatalf("a record without input on the 0005 schema: %v", err)
	}
	if err := old.AppendAudit(ctx, audit.Record{ID: "x", Kind: audit.KindDecision, Input: json.RawMessage(`{}`)}); err == nil {
		t.Fatal("the 0005 schema took an input: the test does not start where 0005 left off")
	}
	_ = old.Close()

	s := openTest(t, dsn)
	if err := s.AppendAudit(ctx, audit.Record{ID: "new", Time: at(time.Hour), Kind: audit.KindDecision, Backend: "notes", Input: json.RawMessage(`{"version":1}`)}); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.QueryAudit(ctx, audit.Query{IncludeInput: true})
	if err != nil || len(got) != 2 {
		t.Fatalf("records after the upgrade: %d, %v", len(got), err)
	}
	for _, r := range got {
		if (r.Input != nil) != (r.ID == "new") {
			t.Errorf("%s: input %s", r.ID, r.Input)
		}
	}
}
