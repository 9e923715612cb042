package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
)

// TestParseAuditQueryUnit: GET /admin/v1/audit's query string. Every
// parameter is read; every bad one is named in the one answer (unknown,
// repeated, malformed, out of range, inconsistent with another), so no
// filter is silently dropped and no page silently shortened.
func TestParseAuditQueryUnit(t *testing.T) {
	since := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	until := time.Date(2026, 1, 3, 0, 0, 0, 123000000, time.UTC)
	cursor := audit.EncodeCursor(since.UnixMicro(), "rec-1")
	for _, tc := range []struct {
		name     string
		query    string
		want     audit.Query
		problems []string
	}{
		{name: "none", query: "", want: audit.Query{}},
		{name: "every parameter",
			query: "kind=decision&subject=alice&agent=cursor&backend=notes&decision=deny&since=2026-01-02T15:04:05Z&until=2026-01-03T00:00:00.123Z&limit=1000&cursor=" + cursor,
			want: audit.Query{Kind: audit.KindDecision, Subject: "alice", Agent: "cursor", Backend: "notes", Decision: "deny",
				Since: since, Until: until, Limit: audit.MaxLimit, Cursor: cursor}},
		{name: "each kind", query: "kind=tool_change", want: audit.Query{Kind: audit.KindToolChange}},
		{name: "since with an offset", query: "since=2026-01-02T17:04:05%2B02:00", want: audit.Query{Since: since}},
		{name: "escaped values", query: "subject=a%20b%26c", want: audit.Query{Subject: "a b&c"}},
		{name: "limit 1", query: "limit=1", want: audit.Query{Limit: 1}},
		{name: "recorded inputs", query: "include=input", want: audit.Query{IncludeInput: true}},
		{name: "include of something else", query: "include=claims", problems: []string{`query parameter include: want input, got "claims"`}},
		{name: "each oauth kind", query: "kind=oauth", want: audit.Query{Kind: audit.KindOAuth}},
		{name: "unknown parameter", query: "user=alice",
			problems: []string{`query parameter "user": unknown (want kind, subject, agent, backend, decision, since, until, limit, cursor, include)`}},
		{name: "parameter names are exact", query: "Kind=decision", problems: []string{`query parameter "Kind": unknown`}},
		{name: "repeated", query: "agent=a&agent=b", want: audit.Query{Agent: "a"}, problems: []string{"query parameter agent: given more than once"}},
		{name: "repeated with the same value", query: "limit=5&limit=5", want: audit.Query{Limit: 5}, problems: []string{"query parameter limit: given more than once"}},
		{name: "limit 0", query: "limit=0", problems: []string{`query parameter limit: want an integer from 1 to 1000, got "0"`}},
		{name: "limit negative", query: "limit=-1", problems: []string{`want an integer from 1 to 1000, got "-1"`}},
		{name: "limit too large", query: "limit=1001", problems: []string{`want an integer from 1 to 1000, got "1001"`}},
		{name: "limit not a number", query: "limit=ten", problems: []string{`got "ten"`}},
		{name: "limit with a sign", query: "limit=%2B5", want: audit.Query{Limit: 5}},
		{name: "limit empty", query: "limit=", problems: []string{`got ""`}},
		{name: "limit echoed short", query: "limit=" + strings.Repeat("9", 100), problems: []string{"want an integer from 1 to 1000"}},
		{name: "since not RFC 3339", query: "since=2026-01-02", problems: []string{"query parameter since: want an RFC 3339 time such as 2026-01-02T15:04:05Z"}},
		{name: "until a Unix time", query: "until=1767366245", problems: []string{"query parameter until: want an RFC 3339 time"}},
		{name: "since after until", query: "since=2026-01-03T00:00:00Z&until=2026-01-02T00:00:00Z", problems: []string{"query parameter since: 2026-01-03T00:00:00Z is not before until 2026-01-02T00:00:00Z"}},
		{name: "since equal to until", query: "since=2026-01-02T00:00:00Z&until=2026-01-02T00:00:00Z", problems: []string{"is not before until"}},
		{name: "unknown kind", query: "kind=everything", problems: []string{`query parameter kind: "everything": want decision, change, shadow, tool_change or oauth`}},
		{name: "kind case", query: "kind=Decision", problems: []string{`query parameter kind: "Decision"`}},
		{name: "unknown decision", query: "decision=maybe", problems: []string{`query parameter decision: "maybe": want allow or deny`}},
		{name: "bad cursor", query: "cursor=not-a-cursor", problems: []string{"query parameter cursor"}},
		// Every problem in one answer, the parsed filters checked too.
		{name: "several problems at once", query: "limit=0&kind=x&bogus=1&since=yesterday&decision=no",
			problems: []string{"limit: want an integer", `"bogus": unknown`, "since: want an RFC 3339 time", `kind: "x"`, `decision: "no"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := unitCtx(t, http.MethodGet, "/admin/v1/audit?"+tc.query, nil)
			q, problems := parseAuditQuery(c)
			if len(problems) != len(tc.problems) {
				t.Fatalf("problems %q, want %d naming %q", problems, len(tc.problems), tc.problems)
			}
			for _, want := range tc.problems {
				found := false
				for _, p := range problems {
					found = found || strings.Contains(p, want)
				}
				if !found {
					t.Fatalf("no problem names %q: %q", want, problems)
				}
			}
			if len(tc.problems) == 0 || tc.want != (audit.Query{}) {
				if !q.Since.Equal(tc.want.Since) || !q.Until.Equal(tc.want.Until) {
					t.Fatalf("since %v until %v, want %v %v", q.Since, q.Until, tc.want.Since, tc.want.Until)
				}
				q.Since, q.Until = tc.want.Since, tc.want.Until
				if q != tc.want {
					t.Fatalf("query %+v, want %+v", q, tc.want)
				}
			}
		})
	}
	// A long bad value is echoed cut short, not whole.
	_, problems := parseAuditQuery(unitCtx(t, http.MethodGet, "/admin/v1/audit?limit="+strings.Repeat("9", 100), nil))
	if len(problems) != 1 || strings.Contains(problems[0], strings.Repeat("9", 40)) {
		t.Fatalf("long limit echoed: %q", problems)
	}
}
