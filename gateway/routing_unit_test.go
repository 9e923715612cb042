package gateway

import (
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// unitTopology builds a routing table from backends and agents as the
// gateway does (buildTopology), trusting issuers; no server is started.
func unitTopology(t *testing.T, backends map[string]config.Backend, agents map[string]config.Agent, issuers ...string) *topology {
	t.Helper()
	topo, err := buildTopology(backends, agents, upstream.BasicFactories())
	if err != nil {
		t.Fatalf("buildTopology: %v", err)
	}
	topo.issuers = issuers
	return topo
}

// The route of a path is the backend whose path is its longest prefix at a
// segment boundary: a near-miss name (/notesX) or another case is no route,
// so a request never reaches a backend whose boundary it was not checked
// against.
func TestMatchUnit(t *testing.T) {
	backends := map[string]config.Backend{
		"notes":       {URL: "http://127.0.0.1:9/mcp", AuthMethod: "none", Paths: []string{"/notes"}},
		"notes-admin": {URL: "http://127.0.0.1:9/admin", AuthMethod: "none", Paths: []string{"/notes/admin"}},
		// Trailing and doubled slashes in the config are canonicalized.
		"hr": {URL: "http://127.0.0.1:9/hr", AuthMethod: "none", Paths: []string{"/hr/", "//people"}},
		// No paths: routed at /<name>.
		"wiki": {URL: "http://127.0.0.1:9/wiki", AuthMethod: "none"},
	}
	topo := unitTopology(t, backends, nil)
	for _, tc := range []struct {
		path, backend, rest string
	}{
		{"/notes", "notes", ""},
		{"/notes/", "notes", "/"},
		{"/notes/sub/path", "notes", "/sub/path"},
		{"/notes/admin", "notes-admin", ""},
		{"/notes/admin/", "notes-admin", "/"},
		{"/notes/admin/x", "notes-admin", "/x"},
		// A sibling whose name starts like the longer prefix stays with notes.
		{"/notes/administrator", "notes", "/administrator"},
		{"/notesX", "", ""},
		{"/notes-admin", "", ""},
		{"/NOTES", "", ""},
		{"/hr", "hr", ""},
		{"/hr/", "hr", "/"},
		{"/hrx", "", ""},
		{"/people", "hr", ""},
		{"/people/a", "hr", "/a"},
		{"/wiki", "wiki", ""},
		{"/", "", ""},
		{"", "", ""},
		{"notes", "", ""},
		// match sees paths checkRequestPath let through; a dot-segment is
		// not resolved here, so it cannot climb out of a prefix either.
		{"/other/../notes", "", ""},
	} {
		r, rest := topo.match(tc.path)
		got := ""
		if r != nil {
			got = r.backend.Name
		}
		if got != tc.backend || rest != tc.rest {
			t.Errorf("match(%q) = %q, rest %q; want %q, rest %q", tc.path, got, rest, tc.backend, tc.rest)
		}
	}
	if r, _ := topo.match("/hr/"); r != nil && r.prefix != "/hr" {
		t.Errorf("the canonical prefix of hr is %q, want /hr", r.prefix)
	}

	// A backend at "/" takes every path no longer prefix claims, whole.
	root := unitTopology(t, map[string]config.Backend{
		"all":   {URL: "http://127.0.0.1:9/mcp", AuthMethod: "none", Paths: []string{"/"}},
		"notes": {URL: "http://127.0.0.1:9/mcp", AuthMethod: "none", Paths: []string{"/notes"}},
	}, nil)
	for _, tc := range []struct{ path, backend, rest string }{
		{"/notes/x", "notes", "/x"},
		{"/notesX", "all", "/notesX"},
		{"/", "all", "/"},
	} {
		r, rest := root.match(tc.path)
		if r == nil || r.backend.Name != tc.backend || rest != tc.rest {
			t.Errorf("with a root backend, match(%q) = %v, %q; want %s, %q", tc.path, r, rest, tc.backend, tc.rest)
		}
	}
}

// Two backends may not share a path, in any spelling, and none may sit
// at or below the gateway's own routes.
func TestBuildTopologyPathConflictsUnit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		paths map[string][]string
		want  string
	}{
		{"same path", map[string][]string{"a": {"/x"}, "b": {"/x"}}, `"/x" is also a path of backend a`},
		{"trailing slash", map[string][]string{"a": {"/x"}, "b": {"/x/"}}, `"/x/" is also a path of backend a`},
		{"admin", map[string][]string{"a": {"/admin/v1/x"}}, "the gateway's own route /admin/v1"},
		{"well-known", map[string][]string{"a": {"/.well-known"}}, "the gateway's own route /.well-known"},
		{"metrics", map[string][]string{"a": {"/metrics/"}}, "the gateway's own route /metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backends := map[string]config.Backend{}
			for name, p := range tc.paths {
				backends[name] = config.Backend{URL: "http://127.0.0.1:9/mcp", AuthMethod: "none", Paths: p}
			}
			_, err := buildTopology(backends, nil, upstream.BasicFactories())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// checkRequestPath refuses every path an ingress or a backend could read as
// another one; plain paths pass.
func TestCheckRequestPathUnit(t *testing.T) {
	for _, tc := range []struct {
		path string
		want string // "" passes; else a part of the refusal
	}{
		{"/notes", ""},
		{"/notes/", ""},
		{"/notes/a-b_c.d~e", ""},
		{"/notes/%41%7e", ""}, // escapes of plain characters are fine
		{"/notes/..foo", ""},  // dots inside a segment are a name
		{"/notes/a.b/c", ""},
		{"/", ""},
		{"notes", "not an absolute path"},
		{"", "not an absolute path"},
		{"http://evil/notes", "not an absolute path"},
		{"*", "not an absolute path"},
		// Dot-segments, plain or encoded in any case.
		{"/notes/../admin", "dot-segment"},
		{"/notes/./x", "dot-segment"},
		{"/notes/..", "dot-segment"},
		{"/notes/.", "dot-segment"},
		{"/..", "dot-segment"},
		{"/notes/%2e%2e/admin", "percent-encodes"},
		{"/notes/%2E%2E/admin", "percent-encodes"},
		{"/notes/.%2e/admin", "percent-encodes"},
		// Encoded separators and escapes that decode into one.
		{"/notes%2fadmin", "percent-encodes"},
		{"/notes%2Fadmin", "percent-encodes"},
		{"/notes%5cadmin", "percent-encodes"},
		{"/notes/%252e%252e", "percent-encodes"}, // double encoding
		{"/notes/%3bx", "percent-encodes"},
		{"/notes/%00", "percent-encodes"},
		{"/notes/%0a", "percent-encodes"},
		{"/notes/%7f", "percent-encodes"},
		// Malformed escapes.
		{"/notes/%", "malformed percent-encoding"},
		{"/notes/%4", "malformed percent-encoding"},
		{"/notes/%zz", "malformed percent-encoding"},
		{"/notes/%4g", "malformed percent-encoding"},
		// Separators some servers read as others.
		{"/notes\\..\\admin", "backslash"},
		{"/notes/..;/admin", "';'"},
		{"/notes;jsessionid=1", "';'"},
		// Empty segments: only a trailing slash is allowed.
		{"//notes", "empty segment"},
		{"/notes//x", "empty segment"},
		{"/notes///", "empty segment"},
		// Control characters and spaces, raw.
		{"/notes x", "control character or space at byte 6"},
		{"/notes\t", "control character"},
		{"/notes\x00", "control character"},
		{"/notes\x7f", "control character"},
	} {
		err := checkRequestPath(tc.path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("checkRequestPath(%q) = %v, want it to pass", tc.path, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("checkRequestPath(%q) = %v, want a refusal naming %s", tc.path, err, tc.want)
		}
	}
	// A long path is abbreviated in the refusal, not echoed whole.
	long := "/" + strings.Repeat("a", 200) + "/.."
	if err := checkRequestPath(long); err == nil || len(err.Error()) > 160 {
		t.Errorf("long path refusal = %v, want an abbreviated one", err)
	}
}

// forwardURL joins a checked sub-path below the backend URL's path, keeping
// the URL's query after it.
func TestForwardURLUnit(t *testing.T) {
	topo := unitTopology(t, map[string]config.Backend{
		"q":     {URL: "http://127.0.0.1:9/mcp?api_key=K", AuthMethod: "none", Paths: []string{"/q"}},
		"slash": {URL: "http://127.0.0.1:9/mcp/", AuthMethod: "none", Paths: []string{"/s"}},
	}, nil)
	for _, tc := range []struct{ backend, rest, want string }{
		{"q", "", "http://127.0.0.1:9/mcp?api_key=K"},
		{"q", "/sub", "http://127.0.0.1:9/mcp/sub?api_key=K"},
		{"q", "/a%20b", "http://127.0.0.1:9/mcp/a%20b?api_key=K"},
		{"slash", "/sub", "http://127.0.0.1:9/mcp/sub"},
		{"slash", "/", "http://127.0.0.1:9/mcp/"},
	} {
		if got := topo.backends[tc.backend].forwardURL(tc.rest); got != tc.want {
			t.Errorf("%s.forwardURL(%q) = %q, want %q", tc.backend, tc.rest, got, tc.want)
		}
	}
}
