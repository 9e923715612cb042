package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var roleGroups = map[string][]string{
	"none":        nil,
	"viewer":      {"mcp-viewers"},
	"admin":       {"mcp-admins"},
	"super-admin": {"mcp-super-admins"},
	"viewer+adm":  {"mcp-viewers", "mcp-admins"},
}

// The property the gateway relies on: a tool is listed exactly when calling
// it would be allowed (for arguments that pass the argument rules).
func TestVisibleToolsAreExactlyTheCallableTools(t *testing.T) {
	e, _ := shippedEngine(t)
	ctx := context.Background()
	benign := map[string]any{"employee_id": "e-1001", "path": "notes/today.md", "message": "hi"}
	checked := 0
	for role, groups := range roleGroups {
		for _, scopes := range [][]string{nil, readScopes, writeScopes} {
			for _, backend := range []string{"employees", "files", "notes", "finance"} {
				visible, err := e.Visible(ctx, lister(groups, scopes, backend), ListTools)
				if err != nil {
					t.Fatalf("%s %v %s: %v", role, scopes, backend, err)
				}
				callable := map[string]bool{}
				for _, tool := range toolsOf(backend) {
					if e.Decide(ctx, caller(groups, scopes, backend, tool.Name, benign)).Allow {
						callable[tool.Name] = true
					}
				}
				if !reflect.DeepEqual(visible, callable) {
					t.Errorf("%s with %v on %s: visible %v, callable %v", role, scopes, backend, sortedNames(visible), sortedNames(callable))
				}
				checked++
			}
		}
	}
	if checked != len(roleGroups)*3*4 {
		t.Fatalf("checked %d combinations", checked)
	}
}

func TestVisibleByRole(t *testing.T) {
	e, _ := shippedEngine(t)
	tests := []struct {
		role    string
		scopes  []string
		backend string
		want    []string
	}{
		{"viewer", writeScopes, "employees", []string{"get_employee", "list_employees", "search_employees"}},
		{"admin", writeScopes, "employees", []string{"get_employee", "list_employees", "search_employees", "update_employee"}},
		{"admin", readScopes, "employees", []string{"get_employee", "list_employees", "search_employees"}},
		{"super-admin", writeScopes, "employees", []string{"delete_employee", "get_employee", "list_employees", "search_employees", "update_employee"}},
		{"viewer", readScopes, "files", []string{"echo", "list_files", "read_file"}},
		{"admin", writeScopes, "files", []string{"add", "echo", "list_files", "long_running", "read_file", "write_file"}},
		{"none", writeScopes, "employees", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.role+" "+tc.backend+" "+strings.Join(tc.scopes, ","), func(t *testing.T) {
			got, err := e.Visible(context.Background(), lister(roleGroups[tc.role], tc.scopes, tc.backend), ListTools)
			if err != nil {
				t.Fatal(err)
			}
			if names := sortedNames(got); !reflect.DeepEqual(names, tc.want) {
				t.Fatalf("visible %v, want %v", names, tc.want)
			}
		})
	}
}

func TestVisibleResourcesAndPrompts(t *testing.T) {
	e, _ := shippedEngine(t)
	in := lister(roleGroups["viewer"], readScopes, "employees")
	in.Resources = []Resource{{URI: "file:///srv/a.txt", Name: "a"}, {URI: "employees://e-1", Name: "e-1"}}
	in.Prompts = []Prompt{{Name: "summarize"}, {Name: "draft_email"}}

	res, err := e.Visible(context.Background(), in, ListResources)
	if err != nil || !reflect.DeepEqual(sortedNames(res), []string{"employees://e-1", "file:///srv/a.txt"}) {
		t.Fatalf("resources %v, %v", res, err)
	}
	prompts, err := e.Visible(context.Background(), in, ListPrompts)
	if err != nil || !reflect.DeepEqual(sortedNames(prompts), []string{"draft_email", "summarize"}) {
		t.Fatalf("prompts %v, %v", prompts, err)
	}
	in.Token.Groups = nil
	if res, err := e.Visible(context.Background(), in, ListResources); err != nil || len(res) != 0 {
		t.Fatalf("a caller without a role sees resources %v (%v)", res, err)
	}
	if _, err := e.Visible(context.Background(), in, ListKind("widgets")); err == nil {
		t.Fatal("unknown list kind accepted")
	}
}

func TestVisibleCache(t *testing.T) {
	e, rec := shippedEngine(t)
	// Every lookup is told (mcpgw_filter_cache_requests_total was never
	// incremented before): a miss, then a hit.
	var lookups []bool
	e.opts.OnVisibleCache = func(hit bool) { lookups = append(lookups, hit) }
	ctx := context.Background()
	in := lister(roleGroups["viewer"], readScopes, "employees")

	first, err := e.Visible(ctx, in, ListTools)
	if err != nil {
		t.Fatal(err)
	}
	e.visible.Wait() // ristretto admits entries asynchronously
	if n := len(rec.all()); n != 1 {
		t.Fatalf("%d records after the first list, want 1", n)
	}

	// Per-call fields are not part of the key: same answer, from the cache.
	again := lister(roleGroups["viewer"], readScopes, "employees")
	again.MCP.Tool, again.MCP.Arguments = "get_employee", map[string]any{"employee_id": "e-7"}
	second, err := e.Visible(ctx, again, ListTools)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.ValueOf(first).Pointer() != reflect.ValueOf(second).Pointer() {
		t.Fatal("second identical list was evaluated again, not served from the cache")
	}
	if n := len(rec.all()); n != 1 {
		t.Fatalf("%d records after a cache hit, want 1 (hits are not evaluations)", n)
	}
	if !reflect.DeepEqual(lookups, []bool{false, true}) {
		t.Fatalf("cache lookups told = %v, want [miss hit]", lookups)
	}

	// Anything the policy can read changes the key.
	changes := map[string]func(*Input){
		"groups":      func(in *Input) { in.Token.Groups = []string{"mcp-admins"} },
		"scopes":      func(in *Input) { in.Token.Scopes = writeScopes },
		"claims":      func(in *Input) { in.Token.Claims = map[string]any{"email": "mallory@example.com"} },
		"agent":       func(in *Input) { in.Agent.ID = "claude-code" },
		"backend":     func(in *Input) { in.Backend.Name = "files" },
		"remote addr": func(in *Input) { in.HTTP.RemoteAddr = "10.0.0.9:1" },
		"kind":        func(in *Input) { in.MCP.Kind = "" },
		"method":      func(in *Input) { in.MCP.Method = "resources/list" },
		"annotations": func(in *Input) {
			in.Tools = append([]Tool(nil), in.Tools...)
			in.Tools[3] = Tool{Name: "update_employee", Annotations: map[string]any{"readOnlyHint": true}}
		},
		"catalog": func(in *Input) { in.Tools = in.Tools[:2] },
	}
	base := listKey(e.seed, in, ListTools, e.Revision(), e.snap.Load().generation)
	for name, change := range changes {
		changed := lister(roleGroups["viewer"], readScopes, "employees")
		change(changed)
		if listKey(e.seed, changed, ListTools, e.Revision(), e.snap.Load().generation) == base {
			t.Errorf("changing %s does not change the cache key", name)
		}
	}
	if listKey(e.seed, again, ListTools, e.Revision(), e.snap.Load().generation) != base {
		t.Error("mcp.tool or mcp.arguments change the cache key")
	}
	// Map order must not matter.
	a := map[string]any{"readOnlyHint": true, "title": "Get", "idempotentHint": true, "openWorldHint": false}
	b := map[string]any{"openWorldHint": false, "idempotentHint": true, "title": "Get", "readOnlyHint": true}
	ka, kb := *lister(nil, nil, "x"), *lister(nil, nil, "x")
	ka.Tools, kb.Tools = []Tool{{Name: "t", Annotations: a}}, []Tool{{Name: "t", Annotations: b}}
	if listKey(e.seed, &ka, ListTools, "r", 1) != listKey(e.seed, &kb, ListTools, "r", 1) {
		t.Error("equal annotation maps hash differently")
	}
}

// A policy change must never be answered from the cache of the old one.
func TestVisibleCacheFollowsPolicyChanges(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(shippedPolicies)); err != nil {
		t.Fatal(err)
	}
	e, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true})
	ctx := context.Background()
	in := lister(roleGroups["viewer"], writeScopes, "employees")

	before, err := e.Visible(ctx, in, ListTools)
	if err != nil {
		t.Fatal(err)
	}
	e.visible.Wait()
	if before["update_employee"] {
		t.Fatal("viewer sees update_employee under the shipped policy")
	}
	oldRevision := e.Revision()
	if !strings.HasPrefix(oldRevision, "dir:sha256:") {
		t.Fatalf("directory revision %q", oldRevision)
	}

	// The security team grants viewers update_employee.
	data, err := os.ReadFile(filepath.Join(dir, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	granted := strings.Replace(string(data), `"tools": {"allow": ["get_*", "list_*", "search_*", "echo"]}`,
		`"tools": {"allow": ["get_*", "list_*", "search_*", "echo", "update_employee"]}`, 1)
	if granted == string(data) {
		t.Fatal("test could not edit data.json")
	}
	if err := os.WriteFile(filepath.Join(dir, "data.json"), []byte(granted), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if e.Revision() == oldRevision {
		t.Fatal("revision did not change with the content")
	}
	after, err := e.Visible(ctx, in, ListTools)
	if err != nil {
		t.Fatal(err)
	}
	if !after["update_employee"] {
		t.Fatalf("after the change viewer sees %v: answered from the old policy's cache", sortedNames(after))
	}
	if d := e.Decide(ctx, caller(roleGroups["viewer"], writeScopes, "employees", "update_employee", nil)); !d.Allow || d.Revision != e.Revision() {
		t.Fatalf("decision after the change %+v", d)
	}

	// A broken edit does not replace the working policy.
	if err := os.WriteFile(filepath.Join(dir, "mcp", "gateway", "roles.rego"), []byte("package mcp.gateway\n\npermitted(x) if {"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx); err == nil {
		t.Fatal("Reload accepted a policy that does not parse")
	}
	if d := e.Decide(ctx, caller(roleGroups["viewer"], writeScopes, "employees", "update_employee", nil)); !d.Allow {
		t.Fatalf("after a failed reload the last good policy must keep serving: %+v", d)
	}
}

func TestVisibleCatalog(t *testing.T) {
	e, rec := shippedEngine(t)
	ctx := context.Background()
	tools := catalog(50)
	cat, err := ToolCatalog(tools)
	if err != nil {
		t.Fatal(err)
	}
	if cat.Kind() != ListTools || cat.Len() != 50 {
		t.Fatalf("catalog kind %s len %d", cat.Kind(), cat.Len())
	}
	for role, groups := range roleGroups {
		for _, scopes := range [][]string{nil, readScopes, writeScopes} {
			in := lister(groups, scopes, "employees")
			in.Tools = tools
			direct, err := e.Visible(ctx, in, ListTools)
			if err != nil {
				t.Fatal(err)
			}
			prepared, err := e.VisibleCatalog(ctx, lister(groups, scopes, "employees"), cat)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(direct, prepared) {
				t.Errorf("%s %v: Visible %v, VisibleCatalog %v", role, scopes, sortedNames(direct), sortedNames(prepared))
			}
		}
	}

	// The catalog's content is part of the key: a changed catalog is
	// evaluated, not answered from the old one's cache.
	in := lister(roleGroups["viewer"], writeScopes, "employees")
	// The loop above already asked for this caller and catalog, and
	// ristretto applies new keys asynchronously: without this wait, that
	// answer and the one below could both be pending, the cache would keep
	// the earlier, and a later hit would rightly return it, not first.
	e.visible.Wait()
	first, err := e.VisibleCatalog(ctx, in, cat)
	if err != nil {
		t.Fatal(err)
	}
	// ristretto may drop a Set under contention (by design), so allow a
	// couple of refills; a cache that never answers still fails.
	hit := false
	for attempt := 0; attempt < 3 && !hit; attempt++ {
		e.visible.Wait()
		n := len(rec.all())
		again, _ := e.VisibleCatalog(ctx, in, cat)
		hit = len(rec.all()) == n
		if hit && reflect.ValueOf(again).Pointer() != reflect.ValueOf(first).Pointer() {
			t.Fatal("a cache hit returned another answer")
		}
		first = again
	}
	if !hit {
		t.Fatal("same caller and catalog was evaluated again")
	}
	renamed := append([]Tool(nil), tools...)
	renamed[3] = Tool{Name: "get_secret", Annotations: map[string]any{"readOnlyHint": true}}
	cat2, err := ToolCatalog(renamed)
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.VisibleCatalog(ctx, in, cat2)
	if err != nil {
		t.Fatal(err)
	}
	if !second["get_secret"] || first["get_secret"] {
		t.Fatalf("changed catalog answered %v", sortedNames(second))
	}

	res, err := ResourceCatalog([]Resource{{URI: "file:///a", Name: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.VisibleCatalog(ctx, in, res); err != nil || !got["file:///a"] {
		t.Fatalf("resource catalog: %v %v", got, err)
	}
	prompts, err := PromptCatalog([]Prompt{{Name: "summarize"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.VisibleCatalog(ctx, in, prompts); err != nil || !got["summarize"] {
		t.Fatalf("prompt catalog: %v %v", got, err)
	}
	if _, err := e.VisibleCatalog(ctx, in, nil); err == nil {
		t.Fatal("nil catalog accepted")
	}
	if _, err := ToolCatalog([]Tool{{Name: "x", Annotations: map[string]any{"bad": make(chan int)}}}); err == nil {
		t.Fatal("catalog with an unencodable annotation accepted")
	}
}

// Decisions made while the policy is swapped each come from one policy:
// the revision a decision names is the policy that made it.
func TestDecisionsDuringReloadNameTheirPolicy(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(shippedPolicies)); err != nil {
		t.Fatal(err)
	}
	original, err := os.ReadFile(filepath.Join(dir, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	granted := []byte(strings.Replace(string(original), `"echo"]}`, `"echo", "update_employee"]}`, 1))

	// The timeout is generous: reloads compete for the CPU, and this test
	// is about which policy decides, not how fast.
	e, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true, Timeout: 10 * time.Second, DecisionLog: func(context.Context, Record) {}})
	ctx := context.Background()
	allowedBy := map[string]bool{e.Revision(): false}
	var mu sync.Mutex
	for i := range 10 {
		body := granted
		if i%2 == 1 {
			body = original
		}
		if err := os.WriteFile(filepath.Join(dir, "data.json"), body, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := e.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		allowedBy[e.Revision()] = i%2 == 0
		mu.Unlock()
	}
	if len(allowedBy) != 2 {
		t.Fatalf("%d revisions for two contents", len(allowedBy))
	}

	in := caller(roleGroups["viewer"], writeScopes, "employees", "update_employee", map[string]any{"employee_id": "e-1"})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var decided atomic.Int64
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := e.Decide(ctx, in)
				mu.Lock()
				want, known := allowedBy[d.Revision]
				mu.Unlock()
				if !known || d.Allow != want {
					errs <- fmt.Sprintf("decision %+v: revision %q allows: %v (known %v)", d, d.Revision, want, known)
					return
				}
				decided.Add(1)
			}
		}()
	}
	for i := range 20 {
		body := granted
		if i%2 == 1 {
			body = original
		}
		if err := os.WriteFile(filepath.Join(dir, "data.json"), body, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := e.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	if decided.Load() == 0 {
		t.Fatal("no decision was made during the reloads")
	}
}
