package audit

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	r := Record{Kind: KindDecision}.Normalize()
	if r.ID == "" || r.Time.IsZero() || r.Time.Location() != time.UTC {
		t.Fatalf("Normalize left %+v", r)
	}
	if d := time.Since(r.Time); d < 0 || d > time.Minute {
		t.Errorf("Time %v is not now", r.Time)
	}
	in := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600))
	r = Record{ID: "keep", Time: in}.Normalize()
	if r.ID != "keep" || !r.Time.Equal(in.Truncate(time.Microsecond)) || r.Time.Nanosecond() != 123456000 || r.Time.Location() != time.UTC {
		t.Errorf("Normalize(%v) = %q %v", in, r.ID, r.Time)
	}
	if a, b := NewID(), NewID(); a == b || a > b {
		t.Errorf("ids %s, %s: want distinct and growing", a, b)
	}
}

func TestValidate(t *testing.T) {
	change := Record{Kind: KindChange, Action: ActionUpdate, ObjectKind: ObjectAgent, ObjectName: "cursor"}
	with := func(f func(*Record)) Record {
		r := change
		f(&r)
		return r
	}
	toolChange := Record{Kind: KindToolChange, Action: ActionSeen, ObjectKind: ObjectTool, ObjectName: "echo", Backend: "notes"}
	withTool := func(f func(*Record)) Record {
		r := toolChange
		f(&r)
		return r
	}
	tests := []struct {
		name    string
		r       Record
		wantSub string // "" = valid
	}{
		{"decision", Record{Kind: KindDecision}, ""},
		{"change", change, ""},
		{"change with snapshots", with(func(r *Record) { r.Before, r.After = json.RawMessage(`{}`), json.RawMessage(`{"a":1}`) }), ""},
		{"unknown kind", Record{Kind: "other"}, "kind"},
		{"empty kind", Record{}, "kind"},
		{"bad action", with(func(r *Record) { r.Action = "rename" }), "action"},
		{"bad object kind", with(func(r *Record) { r.ObjectKind = "policy" }), "object_kind"},
		{"no object name", with(func(r *Record) { r.ObjectName = "" }), "object_name"},
		{"bad before", with(func(r *Record) { r.Before = json.RawMessage(`{`) }), "before"},
		{"bad after", with(func(r *Record) { r.After = json.RawMessage(`nope`) }), "after"},
		{"tool change", toolChange, ""},
		{"tool change, bad action", withTool(func(r *Record) { r.Action = ActionUpdate }), "action"},
		{"tool change, bad object kind", withTool(func(r *Record) { r.ObjectKind = ObjectBackend }), "object_kind"},
		{"tool change without backend", withTool(func(r *Record) { r.Backend = "" }), "backend"},
		{"oauth token", Record{Kind: KindOAuth, Action: ActionToken, Allow: true, ObjectKind: ObjectOAuthClient, ObjectName: "c1"}, ""},
		{"oauth refusal before a client is known", Record{Kind: KindOAuth, Action: ActionRefuse, Reasons: []string{"invalid redirect_uri"}}, ""},
		{"oauth action not listed", Record{Kind: KindOAuth, Action: "authorize"}, ""},
		{"oauth without action", Record{Kind: KindOAuth, ObjectKind: ObjectOAuthClient, ObjectName: "c1"}, "action"},
		{"oauth, bad object kind", Record{Kind: KindOAuth, Action: ActionRegister, ObjectKind: ObjectAgent, ObjectName: "c1"}, "object_kind"},
		{"oauth client without id", Record{Kind: KindOAuth, Action: ActionRegister, ObjectKind: ObjectOAuthClient}, "object_name"},
		{"oauth name without kind", Record{Kind: KindOAuth, Action: ActionRegister, ObjectName: "c1"}, "object_kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Normalize().Validate()
			if tc.wantSub == "" {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), tc.wantSub) {
				t.Fatalf("err = %v, want ErrInvalidRecord naming %q", err, tc.wantSub)
			}
		})
	}
	if err := (Record{Kind: KindDecision}).Validate(); err == nil {
		t.Error("record without id and time validated")
	}
}

func TestQueryNormalize(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		q         Query
		wantLimit int
		wantSub   string
	}{
		{"defaults", Query{}, DefaultLimit, ""},
		{"explicit", Query{Limit: 5, Kind: KindChange, Decision: DecisionDeny}, 5, ""},
		{"oauth kind", Query{Kind: KindOAuth}, DefaultLimit, ""},
		{"clamped", Query{Limit: MaxLimit * 10}, MaxLimit, ""},
		{"window", Query{Since: t0, Until: t0.Add(time.Second)}, DefaultLimit, ""},
		{"negative limit", Query{Limit: -1}, 0, "limit"},
		{"bad kind", Query{Kind: "x"}, 0, "kind"},
		{"bad decision", Query{Decision: "ALLOW"}, 0, "decision"},
		{"empty window", Query{Since: t0, Until: t0}, 0, "since"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := tc.q.Normalize()
			if tc.wantSub != "" {
				if !errors.Is(err, ErrInvalidQuery) || !strings.Contains(err.Error(), tc.wantSub) {
					t.Fatalf("err = %v, want ErrInvalidQuery naming %q", err, tc.wantSub)
				}
				return
			}
			if err != nil || q.Limit != tc.wantLimit {
				t.Fatalf("Normalize = limit %d, %v; want %d", q.Limit, err, tc.wantLimit)
			}
		})
	}
}
