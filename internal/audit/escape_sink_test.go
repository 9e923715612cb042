package audit_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/store"
	"github.com/mcpgw/mcpgw/internal/store/storetest"
)

// hostileRecords carry, in every caller-chosen field, the characters that
// forge or hide text where audit records are read: ESC sequences, CR LF,
// NUL (which PostgreSQL refuses), DEL, C1 (CSI), U+2028, bidi overrides and
// bytes that are not UTF-8. Plain non-ASCII text must pass untouched.
func hostileRecords() []audit.Record {
	return []audit.Record{
		{
			Kind: audit.KindDecision, RequestID: "rid\x7f", Subject: "mallory\x1b[2K", Issuer: "https://idp\u2029", Agent: "bot\u202eexe.txt",
			Backend: "hr\u2066", Method: "tools/call\r\n{\"forged\":1}", Tool: "get_\x00secret\u2028x",
			Reasons: []string{"tool \"a\u009bb\" is not granted", "Zoë may call 🛠"}, Revision: "rev\xff",
		},
		{
			Kind: audit.KindChange, Source: audit.SourceAdmin, Action: audit.ActionUpdate, ObjectKind: audit.ObjectBackend,
			ObjectName: "hr\x1b]8;;", Subject: "root",
			Before: json.RawMessage(`{"description":"a\u001bb\nc","note":"x` + "\u202e" + `y","plain":"Zoë \"q\" \\ \ud83d\udee0","n":1.50}`),
			After:  json.RawMessage(`{"k\u2028":"v","list":["\t",` + "\"\u0085\"" + `]}`),
		},
	}
}

// wantEscaped is hostileRecords as every sink must deliver them: each
// unsafe character a visible \uXXXX (\xXX for a non-UTF-8 byte).
type escapedView struct {
	RequestID, Subject, Issuer, Agent, Backend, Method, Tool, Revision, ObjectName string
	Reasons                                                                        []string
	Before, After                                                                  map[string]any
}

var wantEscaped = []escapedView{
	{
		RequestID: `rid\u007f`, Subject: `mallory\u001b[2K`, Issuer: `https://idp\u2029`, Agent: `bot\u202eexe.txt`, Backend: `hr\u2066`,
		Method: `tools/call\u000d\u000a{"forged":1}`, Tool: `get_\u0000secret\u2028x`, Revision: `rev\xff`,
		Reasons: []string{`tool "a\u009bb" is not granted`, "Zoë may call 🛠"},
	},
	{
		Subject: "root", ObjectName: `hr\u001b]8;;`,
		Before: map[string]any{"description": `a\u001bb\u000ac`, "note": `x\u202ey`, "plain": "Zoë \"q\" \\ 🛠", "n": 1.5},
		After:  map[string]any{`k\u2028`: "v", "list": []any{`\u0009`, `\u0085`}},
	},
}

func view(t *testing.T, r audit.Record) escapedView {
	t.Helper()
	v := escapedView{RequestID: r.RequestID, Subject: r.Subject, Issuer: r.Issuer, Agent: r.Agent, Backend: r.Backend, Method: r.Method,
		Tool: r.Tool, Revision: r.Revision, ObjectName: r.ObjectName, Reasons: r.Reasons}
	for _, p := range []struct {
		raw json.RawMessage
		dst *map[string]any
	}{{r.Before, &v.Before}, {r.After, &v.After}} {
		if len(p.raw) == 0 {
			continue
		}
		if err := json.Unmarshal(p.raw, p.dst); err != nil {
			t.Fatalf("record %s: snapshot %s is not JSON: %v", r.ID, p.raw, err)
		}
	}
	return v
}

// unsafeIn reports a raw character no record may hold after escaping.
func unsafeIn(s string) (rune, bool) {
	for _, r := range s {
		switch {
		case r < 0x20, r >= 0x7f && r <= 0x9f, r == 0x2028, r == 0x2029,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0xfffd:
			return r, true
		}
	}
	return 0, false
}

// collector is an HTTP audit collector keeping the bodies it receives.
type collector struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.bodies = append(c.bodies, b)
	c.mu.Unlock()
}

type lines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func TestSinksEscapeControlCharacters(t *testing.T) {
	ctx := context.Background()
	fromStore := func(dsn func(*testing.T) string) func(t *testing.T) ([]string, []audit.Record) {
		return func(t *testing.T) ([]string, []audit.Record) {
			st, err := store.Open(ctx, dsn(t))
			if err != nil {
				t.Fatalf("open store: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			// A short retry budget: on a refusal (PostgreSQL and NUL)
			// the batch would otherwise be retried for 30 s.
			s := audit.NewStoreSink(st, audit.BatchOptions{RetryFor: time.Second})
			for _, r := range hostileRecords() {
				s.Write(ctx, r)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if s.Dropped() != 0 {
				t.Fatalf("the store refused %d records", s.Dropped())
			}
			recs, _, err := st.QueryAudit(ctx, audit.Query{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			slices.Reverse(recs) // newest first
			return nil, recs
		}
	}
	for _, tc := range []struct {
		name string
		// run writes hostileRecords through a sink and returns the raw
		// text it produced, if any, and the records as delivered.
		run func(t *testing.T) (raw []string, recs []audit.Record)
	}{
		{"json lines", func(t *testing.T) ([]string, []audit.Record) {
			var out lines
			s := audit.NewJSONLinesSink(&out, audit.BatchOptions{})
			for _, r := range hostileRecords() {
				s.Write(ctx, r)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			raw := strings.Split(strings.TrimSuffix(out.buf.String(), "\n"), "\n")
			var recs []audit.Record
			for _, l := range raw {
				var r audit.Record
				if err := json.Unmarshal([]byte(l), &r); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				recs = append(recs, r)
			}
			return raw, recs
		}},
		{"http collector", func(t *testing.T) ([]string, []audit.Record) {
			c := &collector{}
			srv := httptest.NewServer(c)
			t.Cleanup(srv.Close)
			s, err := audit.NewHTTPSink(audit.HTTPOptions{URL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range hostileRecords() {
				s.Write(ctx, r)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			var raw []string
			var recs []audit.Record
			for _, b := range c.bodies {
				var batch []audit.Record
				if err := json.Unmarshal(b, &batch); err != nil {
					t.Fatalf("body %q: %v", b, err)
				}
				raw, recs = append(raw, string(b)), append(recs, batch...)
			}
			return raw, recs
		}},
		{"multi, then a recording sink", func(t *testing.T) ([]string, []audit.Record) {
			rec := &recording{}
			m := audit.Multi(rec)
			for _, r := range hostileRecords() {
				m.Write(ctx, r)
			}
			return nil, rec.recs
		}},
		{"store, SQLite", fromStore(func(*testing.T) string { return ":memory:" })},
		{"store, PostgreSQL", fromStore(func(t *testing.T) string {
			base, ok := storetest.PostgresBase(t)
			if !ok {
				t.SkipNow()
			}
			return storetest.SchemaDSN(t, base)
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, recs := tc.run(t)
			if len(recs) != len(wantEscaped) {
				t.Fatalf("%d records delivered, want %d", len(recs), len(wantEscaped))
			}
			for i, r := range recs {
				got := view(t, r)
				if !equalJSON(t, got, wantEscaped[i]) {
					t.Errorf("record %d delivered as\n%+v\nwant\n%+v", i, got, wantEscaped[i])
				}
				for _, s := range append([]string{got.RequestID, got.Subject, got.Issuer, got.Agent, got.Backend, got.Method, got.Tool, got.Revision, got.ObjectName, string(r.Before), string(r.After)}, got.Reasons...) {
					if c, bad := unsafeIn(s); bad {
						t.Errorf("record %d holds U+%04X raw in %q", i, c, s)
					}
				}
			}
			for _, s := range raw {
				if c, bad := unsafeIn(strings.TrimSuffix(s, "\n")); bad {
					t.Errorf("sink output holds U+%04X raw: %q", c, s)
				}
			}
		})
	}
}

// The caller's record is not changed, and escaping again changes nothing:
// every sink normalizes what it is given, some records twice.
func TestNormalizeEscapesOnce(t *testing.T) {
	for i, in := range hostileRecords() {
		reasons := slices.Clone(in.Reasons)
		once := in.Normalize()
		if !equalJSON(t, view(t, once), wantEscaped[i]) {
			t.Errorf("record %d: Normalize left %+v", i, once)
		}
		twice := once.Normalize()
		if !slices.Equal(in.Reasons, reasons) {
			t.Errorf("record %d: the caller's reasons were changed to %q", i, in.Reasons)
		}
		if !equalJSON(t, view(t, once), view(t, twice)) || string(once.Before) != string(twice.Before) || string(once.After) != string(twice.After) {
			t.Errorf("record %d: normalizing twice escaped again:\n%+v\n%+v", i, once, twice)
		}
	}
	// A clean record keeps its exact bytes, snapshots included.
	clean := audit.Record{Kind: audit.KindChange, Subject: "zoë", Tool: "get_employee", Before: json.RawMessage(`{"a": "b\"c\\/ 🛠", "n": 1e3}`)}
	if got := clean.Normalize(); got.Subject != clean.Subject || got.Tool != clean.Tool || string(got.Before) != string(clean.Before) {
		t.Errorf("clean record changed: %+v", got)
	}
}

// Audit queries filter on the stored, escaped text.
func TestQueryFiltersAreEscapedLikeRecords(t *testing.T) {
	q, err := audit.Query{Subject: "mallory\x1b", Agent: "bot\u202e", Backend: "hr\n"}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if q.Subject != `mallory\u001b` || q.Agent != `bot\u202e` || q.Backend != `hr\u000a` {
		t.Errorf("query filters = %q %q %q", q.Subject, q.Agent, q.Backend)
	}
}

type recording struct{ recs []audit.Record }

func (r *recording) Write(_ context.Context, rec audit.Record) { r.recs = append(r.recs, rec) }
func (r *recording) Close(context.Context) error               { return nil }

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}
