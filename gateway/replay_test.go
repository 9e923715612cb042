package gateway

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/replay"
)

// copyPolicies copies the shipped policy tree (wherever its files sit
// below ../policies) and applies edit to each file: edit returns the new
// body, or nil to keep it.
func copyPolicies(t *testing.T, edit func(body []byte) []byte) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir("../policies", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../policies", path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if edited := edit(body); edited != nil {
			body = edited
		}
		return os.WriteFile(filepath.Join(dst, rel), body, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// tarBundle packs a policy directory as opa build lays a bundle out.
func tarBundle(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == ".manifest" {
			// A bundle is named by its revision, as opa build --revision.
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				return err
			}
			m["revision"] = "candidate-1"
			if body, err = json.Marshal(m); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: "/" + filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(body)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// recordingMask replaces the shipped system.log mask (token and arguments)
// with one for the arguments only: replay needs the token's groups.
func recordingMask(body []byte) []byte {
	if !bytes.Contains(body, []byte("package system.log")) {
		return nil
	}
	return []byte("package system.log\n\nmask contains \"/input/mcp/arguments\"\n")
}

// viewersMayNotList takes list_* from the viewer role: the one change the
// candidate makes.
func viewersMayNotList(body []byte) []byte {
	const grant = `"tools": {"allow": ["get_*", "list_*", "search_*", "echo"]}`
	if !bytes.Contains(body, []byte(grant)) {
		return nil
	}
	return bytes.Replace(body, []byte(grant), []byte(`"tools": {"allow": ["get_*", "search_*", "echo"]}`), 1)
}

// recordedRun is a gateway run with audit.record_inputs on: calls by a
// viewer, an admin and a super-admin through the notes backend, all in
// the audit trail with their inputs.
type recordedRun struct {
	w *adminWorld
	// ids of notable decisions, by what they were.
	veraList, veraPasswd string
	items                []replay.Item
}

func recordRun(t *testing.T) *recordedRun {
	t.Helper()
	recording := copyPolicies(t, recordingMask)
	w := newAdminWorld(t, func(c *config.Config) {
		c.Audit.RecordInputs = true
		c.Policy.Bundle = recording
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	scopes := []string{"mcp:read", "mcp:write"}
	type call struct {
		tool string
		args map[string]any
		ok   bool
	}
	people := []struct {
		sub, group string
		calls      []call
	}{
		{"vera", "mcp-viewers", []call{
			{"echo", map[string]any{"message": "hi"}, true},
			{"list_files", nil, true},
			{"read_file", map[string]any{"path": "/srv/mcp/shared/welcome.txt"}, true},
			{"read_file", map[string]any{"path": "/etc/passwd"}, false},
			{"write_file", map[string]any{"path": "notes/v", "content": "x"}, false},
		}},
		{"bob", "mcp-admins", []call{
			{"list_files", nil, true},
			{"write_file", map[string]any{"path": "notes/b", "content": "x"}, true},
		}},
		{"root", "mcp-super-admins", []call{
			{"echo", map[string]any{"message": "root"}, true},
			{"list_files", nil, true},
		}},
	}
	calls := 0
	for _, p := range people {
		c := w.client("/notes", w.token(p.sub, scopes, []string{p.group}, "claude-client"), "claude-code")
		initialize(ctx, t, c)
		if _, err := c.ListTools(ctx, mcpgo.ListToolsRequest{}); err != nil {
			t.Fatalf("%s: tools/list: %v", p.sub, err)
		}
		for _, cl := range p.calls {
			req := mcpgo.CallToolRequest{}
			req.Params.Name, req.Params.Arguments = cl.tool, cl.args
			res, err := c.CallTool(ctx, req)
			if ok := err == nil && !res.IsError; ok != cl.ok {
				t.Fatalf("%s: %s %v: err %v result %+v, want ok %v", p.sub, cl.tool, cl.args, err, res, cl.ok)
			}
			calls++
		}
	}
	r := &recordedRun{w: w}
	// Decision records are written in batches: wait for every call's.
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, _, err := w.srv.Store.QueryAudit(ctx, audit.Query{Kind: audit.KindDecision, Limit: audit.MaxLimit, IncludeInput: true})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, rec := range recs {
			if rec.Method == "tools/call" && rec.Input != nil {
				n++
			}
			if rec.Method == "tools/call" && rec.Subject == "vera" && rec.Tool == "list_files" {
				r.veraList = rec.DecisionID
			}
			if rec.Method == "tools/call" && rec.Subject == "vera" && rec.Tool == "read_file" && !rec.Allow {
				r.veraPasswd = rec.DecisionID
			}
		}
		if n == calls && r.veraList != "" && r.veraPasswd != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d call decisions recorded with their input", n, calls)
		}
		time.Sleep(50 * time.Millisecond)
	}
	items, err := replay.FromStore(ctx, w.srv.Store, replay.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	r.items = items
	return r
}

func loadPolicy(t *testing.T, dir string) replay.Evaluator {
	t.Helper()
	e, err := replay.LoadPolicy(context.Background(), replay.PolicyOptions{Source: dir, AllowUnsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	return e
}

func changeIDs(cs []replay.Change) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.DecisionID)
	}
	sort.Strings(ids)
	return ids
}

// Issue 18's replay over a recorded run: the shipped policy changes
// nothing; a copy where viewers may no longer call list_* flips exactly
// the viewer's list_files call, from the store and from an OPA
// decision-log file of the same decisions; a decision that read the
// arguments the mask removed is not trusted.
func TestReplayRecordedRun(t *testing.T) {
	r := recordRun(t)
	ctx := context.Background()

	// Every decision the gateway's decision rule made kept its input,
	// masked: the arguments are gone, the caller's groups are there.
	noInput := 0
	for _, it := range r.items {
		if it.Input == nil {
			noInput++
			if !strings.HasSuffix(it.Method, "/list") {
				t.Errorf("decision %s (%s %s) kept no input", it.DecisionID, it.Method, it.Tool)
			}
			continue
		}
		var in struct {
			Token struct {
				Groups []string `json:"groups"`
			} `json:"token"`
			MCP map[string]any `json:"mcp"`
		}
		if err := json.Unmarshal(it.Input, &in); err != nil {
			t.Fatal(err)
		}
		if _, ok := in.MCP["arguments"]; ok || len(in.Token.Groups) != 1 {
			t.Errorf("decision %s: recorded input %s", it.DecisionID, it.Input)
		}
		if !slices.Equal(it.Masked, []string{"/input/mcp/arguments"}) {
			t.Errorf("decision %s: masked %v", it.DecisionID, it.Masked)
		}
	}

	shipped := loadPolicy(t, "../policies")
	modified := copyPolicies(t, viewersMayNotList)
	candidate := loadPolicy(t, modified)

	// (a) The shipped policy: nothing changes. The viewer's read of
	// /etc/passwd was denied on its path argument, which the mask took:
	// replayed without it the policy allows, a difference not trusted.
	rep := replay.Run(ctx, replay.Options{Candidate: shipped}, r.items)
	if len(rep.Changes) != 0 || rep.Counts.NoInput != noInput || !slices.Equal(changeIDs(rep.Masked), []string{r.veraPasswd}) {
		t.Fatalf("shipped policy: counts %+v changes %+v masked %v", rep.Counts, rep.Changes, changeIDs(rep.Masked))
	}
	if rep.Counts.Unchanged != len(r.items)-noInput-1 {
		t.Errorf("shipped policy: %d unchanged of %d replayed", rep.Counts.Unchanged, len(r.items)-noInput)
	}
	rep = replay.Run(ctx, replay.Options{Candidate: shipped, Baseline: shipped}, r.items)
	if len(rep.Changes) != 0 || rep.Counts.Masked != 1 {
		t.Fatalf("shipped policy with baseline: counts %+v", rep.Counts)
	}

	// (b) The modified policy, with the shipped one as baseline: exactly
	// the viewer's list_files call flips, caused by the policy.
	rep = replay.Run(ctx, replay.Options{Candidate: candidate, Baseline: shipped}, r.items)
	if got := changeIDs(rep.Changes); !slices.Equal(got, []string{r.veraList}) {
		t.Fatalf("modified policy: changes %v, want only %s; counts %+v", rep.Changes, r.veraList, rep.Counts)
	}
	c := rep.Changes[0]
	if c.Kind != replay.AllowToDeny || c.Cause != replay.CausePolicy || c.Subject != "vera" || c.Tool != "list_files" ||
		c.Backend != "notes" || c.Agent != "claude-code" || c.After.Allow || len(c.After.Reasons) == 0 {
		t.Errorf("change %+v", c)
	}
	if g := rep.Groups["tool"]; len(g) != 1 || g[0].Value != "list_files" || g[0].AllowToDeny != 1 {
		t.Errorf("groups by tool %+v", g)
	}
	if !rep.Trips([]string{replay.AllowToDeny}) || rep.Trips([]string{replay.DenyToAllow, replay.Reasons}) {
		t.Error("--fail-on")
	}
	// Without a baseline every input here is masked (the arguments), so
	// the flip is listed, not trusted.
	rep = replay.Run(ctx, replay.Options{Candidate: candidate}, r.items)
	if len(rep.Changes) != 0 || !slices.Equal(changeIDs(rep.Masked), changeIDs([]replay.Change{{DecisionID: r.veraList}, {DecisionID: r.veraPasswd}})) {
		t.Errorf("modified policy without baseline: changes %v masked %v", changeIDs(rep.Changes), changeIDs(rep.Masked))
	}

	// (c) The same decisions as OPA's decision-log plugin writes them.
	var jsonl bytes.Buffer
	for _, it := range r.items {
		if it.Input == nil {
			continue // OPA logs the decision rule's evaluations only
		}
		ev := map[string]any{
			"decision_id": it.DecisionID, "path": "mcp/gateway/decision", "input": it.Input,
			"result":    map[string]any{"allow": it.Allow, "reasons": it.Reasons, "status": 0},
			"bundles":   map[string]any{"mcpgw": map[string]any{"revision": it.Revision}},
			"erased":    it.Masked,
			"timestamp": it.Time, "labels": map[string]string{"id": "x", "version": "1.22.3"},
		}
		line, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		jsonl.Write(append(line, '\n'))
	}
	fromLog, skipped, err := replay.FromDecisionLog(&jsonl, replay.Filter{})
	if err != nil || skipped != 0 || len(fromLog) != len(r.items)-noInput {
		t.Fatalf("decision log: %d items, %d skipped, %v", len(fromLog), skipped, err)
	}
	rep = replay.Run(ctx, replay.Options{Candidate: candidate, Baseline: shipped}, fromLog)
	if got := changeIDs(rep.Changes); !slices.Equal(got, []string{r.veraList}) || rep.Changes[0].Subject != "vera" || rep.Changes[0].Tool != "list_files" {
		t.Fatalf("from the decision log: changes %+v", rep.Changes)
	}
	if rep.Counts.Masked != 1 {
		t.Errorf("from the decision log: counts %+v", rep.Counts)
	}
}

// The admin API: inputs only with include=input; replay of a candidate
// bundle sent as the body, authorized as action replay on kind policy.
func TestReplayAdminAPI(t *testing.T) {
	r := recordRun(t)
	w := r.w
	recs, _ := w.auditPage(w.root, "kind=decision&limit=1000")
	for _, rec := range recs {
		if rec.Input != nil || rec.InputMasked != nil {
			t.Fatalf("input returned without include=input: %+v", rec)
		}
	}
	// The extra sinks (stdout, an HTTP collector) never get the inputs.
	for _, rec := range w.sink.all() {
		if rec.Input != nil || rec.InputMasked != nil {
			t.Fatalf("an extra audit sink got an input: %+v", rec)
		}
	}
	raw := w.must(http.StatusOK, http.MethodGet, "/admin/v1/audit?kind=decision&limit=1000", w.root, "")
	if bytes.Contains(raw, []byte(`"input`)) {
		t.Fatalf("audit page names inputs: %s", raw)
	}
	recs, _ = w.auditPage(w.admin, "kind=decision&limit=1000&include=input")
	with := 0
	for _, rec := range recs {
		if rec.Input != nil {
			with++
		}
	}
	if with == 0 {
		t.Fatal("include=input returned no input")
	}
	if status, _, body := w.api(http.MethodGet, "/admin/v1/audit?include=everything", w.root, ""); status != http.StatusBadRequest ||
		!strings.Contains(string(body), "include") {
		t.Fatalf("include=everything: %d %s", status, body)
	}

	bundle := tarBundle(t, copyPolicies(t, viewersMayNotList))
	post := func(token, query, contentType string, body []byte) (int, []byte) {
		req, err := http.NewRequest(http.MethodPost, w.url+"/admin/v1/policy/replay"+query, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, readAll(t, resp)
	}
	// admin may read, not replay (the shipped admin policy's read roles).
	if status, body := post(w.admin, "", "application/gzip", bundle); status != http.StatusForbidden || !strings.Contains(string(body), "replay") {
		t.Fatalf("admin: %d %s", status, body)
	}
	if status, _ := post(w.root, "", "application/json", bundle); status != http.StatusUnsupportedMediaType {
		t.Fatalf("JSON body: %d", status)
	}
	if status, body := post(w.root, "", "application/gzip", []byte("not a bundle")); status != http.StatusBadRequest || !strings.Contains(string(body), "candidate bundle") {
		t.Fatalf("broken bundle: %d %s", status, body)
	}
	if status, body := post(w.root, "?since=yesterday&colour=red", "application/gzip", bundle); status != http.StatusBadRequest ||
		!strings.Contains(string(body), "since") || !strings.Contains(string(body), "colour") {
		t.Fatalf("bad query: %d %s", status, body)
	}
	status, body := post(w.root, "?baseline=active&since=1h&subject=vera", "application/gzip", bundle)
	if status != http.StatusOK {
		t.Fatalf("replay: %d %s", status, body)
	}
	var rep replay.Report
	decodeJSON(t, body, &rep)
	if got := changeIDs(rep.Changes); !slices.Equal(got, []string{r.veraList}) || rep.Baseline == "" || rep.Candidate == rep.Baseline {
		t.Fatalf("replay report: %s", body)
	}
	for _, ch := range append(rep.Changes, rep.Masked...) {
		if ch.Subject != "vera" {
			t.Errorf("subject filter: %+v", ch)
		}
	}
}
