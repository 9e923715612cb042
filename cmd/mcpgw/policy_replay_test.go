package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/policy/policytest"
	"github.com/mcpgw/mcpgw/internal/replay"
	"github.com/mcpgw/mcpgw/internal/store"
)

// replayFixture decides three viewer calls with the shipped policy and
// writes them as OPA decision-log events and into a SQLite audit trail;
// and a candidate policy under which viewers may no longer call list_*.
type replayFixture struct {
	jsonl, dsn, candidate string
}

func newReplayFixture(t *testing.T) replayFixture {
	t.Helper()
	dir := t.TempDir()
	base, err := os.ReadFile("../../testdata/policy/input-viewer-call-allowed.json")
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := replay.LoadPolicy(context.Background(), replay.PolicyOptions{Source: "../../policies", AllowUnsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	defer shipped.Stop(context.Background())
	var events bytes.Buffer
	var recs []audit.Record
	for i, tool := range []string{"get_employee", "list_employees", "delete_employee"} {
		var in map[string]any
		if err := json.Unmarshal(base, &in); err != nil {
			t.Fatal(err)
		}
		in["mcp"].(map[string]any)["tool"] = tool
		raw, _ := json.Marshal(in)
		d := shipped.DecideInput(context.Background(), raw)
		if d.Allow != (tool != "delete_employee") {
			t.Fatalf("%s: shipped policy decides %+v", tool, d)
		}
		id := "dec-" + tool
		at := time.Now().Add(-time.Duration(i+1) * time.Minute).UTC()
		line, _ := json.Marshal(map[string]any{
			"decision_id": id, "path": "mcp/gateway/decision", "input": json.RawMessage(raw),
			"result":  map[string]any{"allow": d.Allow, "reasons": d.Reasons, "status": d.Status},
			"bundles": map[string]any{"mcpgw": map[string]any{"revision": d.Revision}}, "timestamp": at,
		})
		events.Write(append(line, '\n'))
		recs = append(recs, audit.Record{Time: at, Kind: audit.KindDecision, DecisionID: id, Subject: "alice@example.com",
			Agent: "cursor", Backend: "employees", Method: "tools/call", Tool: tool, Allow: d.Allow, Reasons: d.Reasons,
			Revision: d.Revision, Input: raw})
	}
	f := replayFixture{jsonl: filepath.Join(dir, "decisions.jsonl"), dsn: "file:" + filepath.Join(dir, "mcpgw.db")}
	if err := os.WriteFile(f.jsonl, events.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AppendAudit(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()

	f.candidate = filepath.Join(dir, "candidate")
	const grant = `"tools": {"allow": ["get_*", "list_*", "search_*", "echo"]}`
	edited := false
	err = filepath.WalkDir("../../policies", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../../policies", path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(f.candidate, rel), 0o755)
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(body, []byte(grant)) {
			body, edited = bytes.Replace(body, []byte(grant), []byte(`"tools": {"allow": ["get_*", "search_*", "echo"]}`), 1), true
		}
		return os.WriteFile(filepath.Join(f.candidate, rel), body, 0o644)
	})
	if err != nil || !edited {
		t.Fatalf("candidate policy: %v (edited %v)", err, edited)
	}
	return f
}

// `mcpgw policy replay`: exit codes 0, 1, 2 and 3, from a decision-log
// file and from a store, as a table and as JSON.
func TestPolicyReplayCommand(t *testing.T) {
	f := newReplayFixture(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"shipped: nothing changes", []string{"--bundle", "../../policies", "--decisions", f.jsonl, "--fail-on", "allow-to-deny,deny-to-allow,reasons"}, 0, "no decision changes", ""},
		{"candidate flips list_employees", []string{"--bundle", f.candidate, "--decisions", f.jsonl, "--fail-on", "allow-to-deny"}, 3, "dec-list_employees", ""},
		{"a kind that does not occur", []string{"--bundle", f.candidate, "--decisions", f.jsonl, "--fail-on", "deny-to-allow,reasons"}, 0, "allow -> deny 1", ""},
		{"without --fail-on", []string{"--bundle", f.candidate, "--decisions", f.jsonl}, 0, "changes by tool", ""},
		{"from the store", []string{"--bundle", f.candidate, "--store", f.dsn, "--baseline", "../../policies", "--fail-on", "allow-to-deny"}, 3, "changes caused by policy 1", ""},
		{"filtered out", []string{"--bundle", f.candidate, "--store", f.dsn, "--tool", "get_employee", "--fail-on", "allow-to-deny"}, 0, "no decision changes", ""},
		{"too old", []string{"--bundle", f.candidate, "--decisions", f.jsonl, "--since", "30s", "--fail-on", "allow-to-deny"}, 0, "records 0\n", ""},
		{"no bundle", []string{"--decisions", f.jsonl}, 2, "", "--bundle is required"},
		{"two sources", []string{"--bundle", f.candidate, "--decisions", f.jsonl, "--store", f.dsn}, 2, "", "exactly one of"},
		{"unknown kind", []string{"--bundle", f.candidate, "--decisions", f.jsonl, "--fail-on", "flips"}, 2, "", `unknown change kind "flips"`},
		{"bad since", []string{"--bundle", f.candidate, "--decisions", f.jsonl, "--since", "yesterday"}, 2, "", "--since"},
		{"missing bundle", []string{"--bundle", "/nonexistent", "--decisions", f.jsonl}, 1, "", "--bundle /nonexistent"},
		{"missing file", []string{"--bundle", f.candidate, "--decisions", "/nonexistent.jsonl"}, 1, "", "nonexistent.jsonl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"policy", "replay"}, tt.args...), &stdout, &stderr)
			// Column widths aside: runs of spaces read as one.
			flat := strings.Join(strings.Fields(strings.ReplaceAll(stdout.String(), "\n", " \x00 ")), " ")
			flat = strings.ReplaceAll(flat, " \x00 ", "\n")
			if code != tt.code || !strings.Contains(flat, tt.inStdout) || !strings.Contains(stderr.String(), tt.inStderr) {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
		})
	}

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"policy", "replay", "--bundle", f.candidate, "--decisions", f.jsonl, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, stderr.String())
	}
	var rep replay.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Records != 3 || rep.Counts.Unchanged != 2 || rep.Counts.AllowToDeny != 1 || len(rep.Changes) != 1 ||
		rep.Changes[0].DecisionID != "dec-list_employees" || !rep.Changes[0].Before.Allow || rep.Changes[0].After.Allow {
		t.Fatalf("--json report: %s", stdout.String())
	}
}

// A signed candidate bundle replays with --verification-key, and is
// refused with another key (exit 1), as `policy eval` checks it.
func TestPolicyReplaySignedBundle(t *testing.T) {
	f := newReplayFixture(t)
	private, public := policytest.KeyPair(t)
	_, otherPublic := policytest.KeyPair(t)
	bundle := policytest.BuildBundle(t, policytest.Build{Dir: f.candidate, Revision: "candidate-7", SigningKey: private})
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"policy", "replay", "--bundle", bundle, "--verification-key", public,
		"--decisions", f.jsonl, "--fail-on", "allow-to-deny"}, &stdout, &stderr)
	if code != 3 || !strings.Contains(stdout.String(), "candidate-7") {
		t.Fatalf("signed: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{"policy", "replay", "--bundle", bundle, "--verification-key", otherPublic,
		"--decisions", f.jsonl}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "--bundle") {
		t.Fatalf("wrong key: exit %d\n%s", code, stderr.String())
	}
}
