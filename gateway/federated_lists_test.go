package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// contentItems is how many prompts, resources and templates each content
// backend has besides its odd ones; its pages hold two, so every list spans
// several pages of several backends.
const contentItems = 3

// contentBackend is a real mcp-go server, name, with prompts, resources,
// resource templates, completions, logging and subscriptions, paged two
// items at a time. Besides its own items it lists a prompt named like
// wiki's (wiki__sneaky) and a resource in an mcpgw.* scheme: harmless
// while it is prefixed, left out when it is the unprefixed backend. It
// listens on a free loopback port until the test ends; stop closes it.
func contentBackend(t *testing.T, name string) (url string, stop func()) {
	t.Helper()
	complete := completer{}
	s := server.NewMCPServer(name, "1.0.0", server.WithPromptCapabilities(false), server.WithResourceCapabilities(true, false),
		server.WithToolCapabilities(false), server.WithLogging(), server.WithCompletions(), server.WithPaginationLimit(2),
		server.WithPromptCompletionProvider(complete), server.WithResourceCompletionProvider(complete))
	prompt := func(p string) {
		s.AddPrompt(mcpgo.NewPrompt(p, mcpgo.WithArgument("topic")), func(context.Context, mcpgo.GetPromptRequest) (*mcpgo.GetPromptResult, error) {
			return mcpgo.NewGetPromptResult(p, []mcpgo.PromptMessage{mcpgo.NewPromptMessage(mcpgo.RoleUser, mcpgo.NewTextContent(name+" says "+p))}), nil
		})
	}
	read := func(_ context.Context, r mcpgo.ReadResourceRequest) ([]mcpgo.ResourceContents, error) {
		return []mcpgo.ResourceContents{mcpgo.TextResourceContents{URI: r.Params.URI, MIMEType: "text/plain", Text: name + " has " + r.Params.URI}}, nil
	}
	for i := range contentItems {
		prompt(fmt.Sprintf("p%d", i))
		s.AddResource(mcpgo.NewResource(fmt.Sprintf("file:///%s/r%d", name, i), fmt.Sprintf("r%d", i)), read)
		s.AddResourceTemplate(mcpgo.NewResourceTemplate(fmt.Sprintf("file:///%s/t%d/{id}", name, i), fmt.Sprintf("t%d", i)), read)
	}
	prompt("wiki__sneaky")
	s.AddResource(mcpgo.NewResource("mcpgw.wiki+file:///sneaky", "sneaky"), read)
	s.AddTool(mcpgo.NewTool("search_"+name), func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		return mcpgo.NewToolResultText(name + " searched"), nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: server.NewStreamableHTTPServer(s)}
	go func() { _ = srv.Serve(ln) }()
	var once sync.Once
	stop = func() { once.Do(func() { _ = srv.Close() }) }
	t.Cleanup(stop)
	return "http://" + ln.Addr().String() + "/mcp", stop
}

// completer completes any argument with the backend-neutral values alpha
// and beta, and says what it completed in a third value.
type completer struct{}

func (completer) CompletePromptArgument(_ context.Context, prompt string, _ mcpgo.CompleteArgument, _ mcpgo.CompleteContext) (*mcpgo.Completion, error) {
	return &mcpgo.Completion{Values: []string{"alpha", "beta", "prompt:" + prompt}}, nil
}

func (completer) CompleteResourceArgument(_ context.Context, uri string, _ mcpgo.CompleteArgument, _ mcpgo.CompleteContext) (*mcpgo.Completion, error) {
	return &mcpgo.Completion{Values: []string{"alpha", "beta", "uri:" + uri}}, nil
}

// contentWorld is the federated harness with two content backends, docs
// and wiki, besides the demo employees and notes, all reachable by
// claude-code; audits are the audit records written.
type contentWorld struct {
	*harness
	records  func() []policy.Record
	audits   func() []audit.Record
	stopWiki func()
	viewer   string
}

func newContentWorld(t *testing.T, mutate func(*config.Config), logger *slog.Logger) *contentWorld {
	t.Helper()
	engine, records := recordingEngine(t)
	var mu sync.Mutex
	var audits []audit.Record
	docs, _ := contentBackend(t, "docs")
	wiki, stopWiki := contentBackend(t, "wiki")
	h := newHarness(t, harnessOptions{
		logger:     logger,
		authorizer: engine,
		audit: func(_ context.Context, r audit.Record) {
			mu.Lock()
			audits = append(audits, r)
			mu.Unlock()
		},
		mutate: func(c *config.Config) {
			c.Server.FederatedPath = "/mcp"
			c.Backends["docs"] = config.Backend{URL: docs, Paths: []string{"/docs"}, AuthMethod: "none", TimeoutSeconds: 5}
			c.Backends["wiki"] = config.Backend{URL: wiki, Paths: []string{"/wiki"}, AuthMethod: "none", TimeoutSeconds: 5}
			c.Agents["claude-code"] = claudeCodeAgent([]string{"mcp:read", "mcp:write"}, "employees", "notes", "docs", "wiki")
			if mutate != nil {
				mutate(c)
			}
		},
	})
	return &contentWorld{harness: h, stopWiki: stopWiki,
		viewer:  h.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, claudeClient),
		records: records,
		audits: func() []audit.Record {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(audits)
		},
	}
}

// session is an initialized mcp-go client on path for the viewer.
func (w *contentWorld) session(ctx context.Context, t *testing.T, path string) *client.Client {
	t.Helper()
	c := w.client(path, w.viewer, "claude-code")
	initialize(ctx, t, c)
	return c
}

// listKindCase is one list, read whole through an mcp-go client (which
// follows nextCursor), as each item's name or URI.
type listKindCase struct {
	method string
	list   func(context.Context, *client.Client) ([]string, error)
	// shown is how the federated endpoint shows backend b's item.
	shown func(b, item string) string
}

var listKindCases = []listKindCase{
	{"tools/list", func(ctx context.Context, c *client.Client) ([]string, error) {
		r, err := c.ListTools(ctx, mcpgo.ListToolsRequest{})
		return mapItems(r, err, func(r *mcpgo.ListToolsResult) []mcpgo.Tool { return r.Tools }, func(x mcpgo.Tool) string { return x.Name })
	}, func(b, n string) string { return b + "__" + n }},
	{"prompts/list", func(ctx context.Context, c *client.Client) ([]string, error) {
		r, err := c.ListPrompts(ctx, mcpgo.ListPromptsRequest{})
		return mapItems(r, err, func(r *mcpgo.ListPromptsResult) []mcpgo.Prompt { return r.Prompts }, func(x mcpgo.Prompt) string { return x.Name })
	}, func(b, n string) string { return b + "__" + n }},
	{"resources/list", func(ctx context.Context, c *client.Client) ([]string, error) {
		r, err := c.ListResources(ctx, mcpgo.ListResourcesRequest{})
		return mapItems(r, err, func(r *mcpgo.ListResourcesResult) []mcpgo.Resource { return r.Resources }, func(x mcpgo.Resource) string { return x.URI })
	}, func(b, u string) string { return "mcpgw." + b + "+" + u }},
	{"resources/templates/list", func(ctx context.Context, c *client.Client) ([]string, error) {
		r, err := c.ListResourceTemplates(ctx, mcpgo.ListResourceTemplatesRequest{})
		return mapItems(r, err, func(r *mcpgo.ListResourceTemplatesResult) []mcpgo.ResourceTemplate { return r.ResourceTemplates },
			func(x mcpgo.ResourceTemplate) string { return x.URITemplate.Raw() })
	}, func(b, u string) string { return "mcpgw." + b + "+" + u }},
}

func mapItems[R any, T any](r *R, err error, items func(*R) []T, key func(T) string) ([]string, error) {
	if err != nil {
		return nil, err
	}
	var out []string
	for _, x := range items(r) {
		out = append(out, key(x))
	}
	return out, nil
}

// TestFederatedLists: each federated list is the backends' own lists for
// the same caller, names and URIs rewritten, every item once, though every
// backend pages two items at a time and two backends have no prompts or
// resources at all; and it is not a partial list (nothing audited).
func TestFederatedLists(t *testing.T) {
	w := newContentWorld(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fed := w.session(ctx, t, "/mcp")
	own := map[string]*client.Client{}
	for _, b := range []string{"docs", "employees", "notes", "wiki"} {
		own[b] = w.session(ctx, t, "/"+b)
	}
	for _, tc := range listKindCases {
		t.Run(tc.method, func(t *testing.T) {
			var want []string
			for b, c := range own {
				items, err := tc.list(ctx, c)
				if err != nil && !strings.Contains(err.Error(), "not supported") && !strings.Contains(err.Error(), "not found") {
					t.Fatalf("%s on /%s: %v", tc.method, b, err)
				}
				for _, it := range items {
					want = append(want, tc.shown(b, it))
				}
			}
			got, err := tc.list(ctx, fed)
			if err != nil {
				t.Fatalf("federated %s: %v", tc.method, err)
			}
			slices.Sort(want)
			slices.Sort(got)
			if len(want) < 2*contentItems || !slices.Equal(got, want) {
				t.Fatalf("federated %s:\n got %v\nwant %v", tc.method, got, want)
			}
		})
	}
	for _, r := range w.audits() {
		if r.Outcome == "federated_partial" {
			t.Errorf("a complete list was audited as partial: %+v", r)
		}
	}
}

// TestFederatedListPages: walking prompts/list page by page, each page is
// the next page of every backend still listing, backends in name order,
// every prompt once, and the cursors carry nothing a client should read
// (they are refused altered).
func TestFederatedListPages(t *testing.T) {
	w := newContentWorld(t, nil, nil)
	sid := w.openSession("/mcp", w.viewer, "claude-code")
	var pages [][]string
	cursor := ""
	for range 20 {
		params := "{}"
		if cursor != "" {
			params = fmt.Sprintf(`{"cursor":%q}`, cursor)
		}
		res := w.result(t, sid, "prompts/list", params)
		var page struct {
			Prompts    []struct{ Name string } `json:"prompts"`
			NextCursor string                  `json:"nextCursor"`
		}
		if err := json.Unmarshal(res, &page); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range page.Prompts {
			names = append(names, p.Name)
		}
		pages = append(pages, names)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
		if strings.Contains(cursor, "docs") || strings.Contains(cursor, "wiki") {
			t.Fatalf("cursor %q is readable", cursor)
		}
	}
	// contentItems+1 prompts per backend, two a page; employees and notes
	// have none.
	// mcp-go gives a full last page a nextCursor (its next page is empty):
	// so the walk ends with an empty page, which is the backend's own.
	if last := len(pages) - 1; last > 0 && len(pages[last]) == 0 {
		pages = pages[:last]
	}
	want := [][]string{{"docs__p0", "docs__p1", "wiki__p0", "wiki__p1"}, {"docs__p2", "docs__wiki__sneaky", "wiki__p2", "wiki__wiki__sneaky"}}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Fatalf("pages %v, want %v", pages, want)
	}
}

// result is the result of one request on the federated session sid, or
// the test fails.
func (w *contentWorld) result(t *testing.T, sid, method, params string) json.RawMessage {
	t.Helper()
	reply := w.rpc(t, sid, method, params)
	var m struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(reply, &m); err != nil || m.Result == nil {
		t.Fatalf("%s %s: %s", method, params, reply)
	}
	return m.Result
}

// rpc is the one JSON-RPC reply to a request on /mcp, JSON or SSE.
func (w *contentWorld) rpc(t *testing.T, sid, method, params string) []byte {
	t.Helper()
	resp := w.do(rawRequest{path: "/mcp", token: w.viewer, agent: "claude-code", session: sid,
		headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"},
		body:    fmt.Sprintf(`{"jsonrpc":"2.0","id":7,"method":%q,"params":%s}`, method, params)})
	msgs := rpcMessages(t, resp)
	if len(msgs) != 1 {
		t.Fatalf("%s: HTTP %d, %d messages %v", method, resp.StatusCode, len(msgs), msgs)
	}
	b, _ := json.Marshal(msgs[0])
	return b
}

// TestFederatedBadCursors: a cursor the endpoint did not give for this
// list and this session is refused, -32602 naming cursor.
func TestFederatedBadCursors(t *testing.T) {
	w := newContentWorld(t, nil, nil)
	sid := w.openSession("/mcp", w.viewer, "claude-code")
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, method, cursor, want string
	}{
		{"garbage", "prompts/list", "!!", "not a cursor this endpoint gave"},
		{"not JSON", "prompts/list", enc("docs"), "not a cursor this endpoint gave"},
		{"unknown field", "prompts/list", enc(`{"k":"prompts/list","c":{"docs":"x"},"x":1}`), "not a cursor this endpoint gave"},
		{"trailing data", "prompts/list", enc(`{"k":"prompts/list","c":{"docs":"x"}}{}`), "not a cursor this endpoint gave"},
		{"no backend", "prompts/list", enc(`{"k":"prompts/list","c":{}}`), "not a cursor this endpoint gave"},
		{"empty backend cursor", "prompts/list", enc(`{"k":"prompts/list","c":{"docs":""}}`), "not a cursor this endpoint gave"},
		{"another list's", "resources/list", enc(`{"k":"prompts/list","c":{"docs":"x"}}`), "a cursor of prompts/list, not of resources/list"},
		{"backend not in the session", "prompts/list", enc(`{"k":"prompts/list","c":{"payroll":"x"}}`), "names no backend of this session"},
		{"not a string", "tools/list", "", "cursor: must be a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := fmt.Sprintf(`{"cursor":%q}`, tc.cursor)
			if tc.cursor == "" {
				params = `{"cursor":5}`
			}
			reply := string(w.rpc(t, sid, tc.method, params))
			if !strings.Contains(reply, fmt.Sprint(mcpgo.INVALID_PARAMS)) || !strings.Contains(reply, "invalid params: cursor: "+strings.TrimPrefix(tc.want, "cursor: ")) {
				t.Fatalf("reply %s, want -32602 with %q", reply, tc.want)
			}
		})
	}
	// The cursor the endpoint gave goes on with each backend's second page.
	var first struct {
		NextCursor string `json:"nextCursor"`
	}
	if err := json.Unmarshal(w.result(t, sid, "resources/list", "{}"), &first); err != nil || first.NextCursor == "" {
		t.Fatalf("resources/list first page: no cursor (%v)", err)
	}
	res := string(w.result(t, sid, "resources/list", fmt.Sprintf(`{"cursor":%q}`, first.NextCursor)))
	if !strings.Contains(res, "mcpgw.docs+file:///docs/r2") || !strings.Contains(res, "mcpgw.wiki+file:///wiki/r2") || strings.Contains(res, "/r0") {
		t.Fatalf("resources/list second page: %s", res)
	}
}

// TestFederatedRouted: prompts/get, resources/read, subscribe and
// unsubscribe, completion and logging/setLevel reach the backend the name
// or URI names, with its own name or URI; what names no backend of the
// session is refused naming the field.
func TestFederatedRouted(t *testing.T) {
	w := newContentWorld(t, nil, nil)
	sid := w.openSession("/mcp", w.viewer, "claude-code")
	for _, tc := range []struct {
		method, params string
		want           []string // in the result
	}{
		{"prompts/get", `{"name":"docs__p1"}`, []string{"docs says p1"}},
		{"prompts/get", `{"name":"wiki__p1"}`, []string{"wiki says p1"}},
		{"prompts/get", `{"name":"docs__wiki__sneaky"}`, []string{"docs says wiki__sneaky"}},
		{"resources/read", `{"uri":"mcpgw.wiki+file:///wiki/r2"}`, []string{`"uri":"mcpgw.wiki+file:///wiki/r2"`, "wiki has file:///wiki/r2"}},
		{"resources/read", `{"uri":"mcpgw.docs+file:///docs/t0/42"}`, []string{`"uri":"mcpgw.docs+file:///docs/t0/42"`, "docs has file:///docs/t0/42"}},
		{"resources/subscribe", `{"uri":"mcpgw.docs+file:///docs/r0"}`, nil},
		{"resources/unsubscribe", `{"uri":"mcpgw.docs+file:///docs/r0"}`, nil},
		{"completion/complete", `{"ref":{"type":"ref/prompt","name":"wiki__p0"},"argument":{"name":"topic","value":"a"}}`, []string{"alpha", "prompt:p0"}},
		{"completion/complete", `{"ref":{"type":"ref/resource","uri":"mcpgw.docs+file:///docs/t1/{id}"},"argument":{"name":"id","value":"1"}}`, []string{"uri:file:///docs/t1/{id}"}},
		{"logging/setLevel", `{"level":"debug"}`, nil},
		{"tools/call", `{"name":"wiki__search_wiki","arguments":{}}`, []string{"wiki searched"}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			res := string(w.result(t, sid, tc.method, tc.params))
			for _, want := range tc.want {
				if !strings.Contains(res, want) {
					t.Fatalf("%s %s: %s, want %q", tc.method, tc.params, res, want)
				}
			}
		})
	}
	for _, tc := range []struct{ method, params, want string }{
		{"prompts/get", `{"name":"p1"}`, "invalid params: name: prompt"},
		{"prompts/get", `{"name":"payroll__p1"}`, "names no backend of this session"},
		{"resources/read", `{"uri":"file:///docs/r0"}`, "invalid params: uri:"},
		{"resources/subscribe", `{"uri":"mcpgw.payroll+file:///x"}`, "invalid params: uri:"},
		{"completion/complete", `{"ref":{"type":"ref/prompt","name":"p0"},"argument":{"name":"topic","value":"a"}}`, "invalid params: ref.name"},
		{"completion/complete", `{"ref":{"type":"ref/resource","uri":"file:///x"},"argument":{"name":"id","value":"a"}}`, "invalid params: ref.uri"},
		{"completion/complete", `{"ref":{"type":"ref/tool","name":"docs__x"},"argument":{"name":"id","value":"a"}}`, "invalid params: ref.type"},
	} {
		t.Run("refused "+tc.method, func(t *testing.T) {
			reply := string(w.rpc(t, sid, tc.method, tc.params))
			if !strings.Contains(reply, fmt.Sprint(mcpgo.INVALID_PARAMS)) || !strings.Contains(reply, tc.want) {
				t.Fatalf("%s %s: %s, want -32602 with %q", tc.method, tc.params, reply, tc.want)
			}
		})
	}
}

// TestFederatedPromptDecision: a federated prompts/get is decided on the
// backend's path as a prompts/get there is: equal decision records.
func TestFederatedPromptDecision(t *testing.T) {
	w := newContentWorld(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fed, own := w.session(ctx, t, "/mcp"), w.session(ctx, t, "/docs")
	for name, c := range map[string]*client.Client{"docs__p2": fed, "p2": own} {
		req := mcpgo.GetPromptRequest{}
		req.Params.Name = name
		if res, err := c.GetPrompt(ctx, req); err != nil || len(res.Messages) == 0 {
			t.Fatalf("prompts/get %s: %+v %v", name, res, err)
		}
	}
	var got []policy.Record
	for _, r := range w.records() {
		if r.Query == "decision" && r.Method == "prompts/get" {
			got = append(got, r)
		}
	}
	if len(got) != 2 || !got[0].Allow || !got[1].Allow || got[0].Backend != "docs" || got[1].Backend != "docs" ||
		got[0].Tool != "p2" || got[1].Tool != "p2" || !slices.Equal(got[0].Reasons, got[1].Reasons) {
		t.Fatalf("decision records of the two prompts/get differ or are missing: %+v", got)
	}
}

// TestFederatedUnprefixed: with docs unprefixed (federated_prefix ""), its
// prompts and URIs are shown as they are and route back to it, except what
// would read as wiki's (a prompt named wiki__…, a URI in an mcpgw.*
// scheme): left out, with a warning.
func TestFederatedUnprefixed(t *testing.T) {
	var logs testutil.SyncBuffer
	empty := ""
	w := newContentWorld(t, func(c *config.Config) {
		b := c.Backends["docs"]
		b.FederatedPrefix = &empty
		c.Backends["docs"] = b
	}, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fed := w.session(ctx, t, "/mcp")
	prompts, err := listKindCases[1].list(ctx, fed)
	if err != nil {
		t.Fatal(err)
	}
	resources, err := listKindCases[2].list(ctx, fed)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"p0", "wiki__p0", "wiki__wiki__sneaky"} {
		if !slices.Contains(prompts, want) {
			t.Errorf("prompts %v lack %s", prompts, want)
		}
	}
	if slices.Contains(prompts, "wiki__sneaky") || slices.Contains(prompts, "docs__p0") {
		t.Errorf("prompts %v show docs' wiki__sneaky or a prefixed docs name", prompts)
	}
	if !slices.Contains(resources, "file:///docs/r0") || slices.Contains(resources, "mcpgw.wiki+file:///sneaky") {
		t.Errorf("resources %v: want docs' URIs unchanged and its mcpgw.* one left out", resources)
	}
	if !strings.Contains(logs.String(), "item left out") {
		t.Errorf("no warning for the items left out:\n%s", logs.String())
	}
	req := mcpgo.GetPromptRequest{}
	req.Params.Name = "p0"
	if res, err := fed.GetPrompt(ctx, req); err != nil || !strings.Contains(fmt.Sprint(res.Messages), "docs says p0") {
		t.Fatalf("prompts/get p0: %+v %v", res, err)
	}
	read := mcpgo.ReadResourceRequest{}
	read.Params.URI = "file:///docs/r1"
	if res, err := fed.ReadResource(ctx, read); err != nil || len(res.Contents) != 1 || res.Contents[0].(mcpgo.TextResourceContents).URI != "file:///docs/r1" {
		t.Fatalf("resources/read file:///docs/r1: %+v %v", res, err)
	}
}

// TestFederatedPartialListAudited: a backend that fails during a list is
// left out, and the caller's partial list is in the log and the audit
// trail, naming the backend and why.
func TestFederatedPartialListAudited(t *testing.T) {
	var logs testutil.SyncBuffer
	w := newContentWorld(t, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fed := w.session(ctx, t, "/mcp")
	w.stopWiki()
	prompts, err := listKindCases[1].list(ctx, fed)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(prompts, "docs__p0") || slices.ContainsFunc(prompts, func(n string) bool { return strings.HasPrefix(n, "wiki__") }) {
		t.Fatalf("prompts with wiki down: %v", prompts)
	}
	if !strings.Contains(logs.String(), "federated prompts/list: backend left out of the list") {
		t.Errorf("no warning:\n%s", logs.String())
	}
	var partial []audit.Record
	for _, r := range w.audits() {
		if r.Outcome == "federated_partial" {
			partial = append(partial, r)
		}
	}
	if len(partial) != 1 || partial[0].Backend != "wiki" || partial[0].Method != "prompts/list" || partial[0].Subject != "alice" ||
		partial[0].Allow || len(partial[0].Reasons) != 1 || !strings.Contains(partial[0].Reasons[0], "backend wiki left out of the federated list") {
		t.Fatalf("partial-list audit records %+v", partial)
	}
	if err := partial[0].Validate(); err != nil && !strings.Contains(err.Error(), "id is empty") {
		t.Fatalf("the record would not be stored: %v", err)
	}
}

// TestFederatedCapabilities: initialize merges the backends' server
// capabilities; subscribe is offered since docs and wiki support it.
func TestFederatedCapabilities(t *testing.T) {
	w := newContentWorld(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := w.client("/mcp", w.viewer, "claude-code")
	res := initialize(ctx, t, c)
	caps := res.Capabilities
	if caps.Tools == nil || caps.Prompts == nil || caps.Resources == nil || !caps.Resources.Subscribe || caps.Logging == nil || caps.Completions == nil {
		t.Fatalf("capabilities %+v", caps)
	}
	if caps.Tools.ListChanged || caps.Prompts.ListChanged || caps.Resources.ListChanged {
		t.Fatalf("listChanged offered without a stream to send it on: %+v", caps)
	}
}

// TestFederatedRateLimitOnce: a federated request counts once against the
// caller's requests_per_minute, however many backend requests it makes,
// and an initialize counts one session, however many backends it opens.
func TestFederatedRateLimitOnce(t *testing.T) {
	const budget = 6
	h, _ := federatedHarness(t)
	// A second gateway on the same backends, with budgets.
	limited := newHarness(t, harnessOptions{share: h, authorizer: engineFor(t, "../testdata/policy/allow-all"), mutate: func(c *config.Config) {
		c.Server.FederatedPath = "/mcp"
		c.RateLimit.RequestsPerMinute = budget
		c.RateLimit.SessionsPerMinute = 1
	}})
	viewer := limited.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, claudeClient)
	// initialize and notifications/initialized: two requests, one session
	// (charged per backend, it would be 2 + 4 requests and 2 sessions).
	sid := limited.openSession("/mcp", viewer, "claude-code")
	for i := range budget - 2 {
		resp := limited.do(rawRequest{path: "/mcp", token: viewer, agent: "claude-code", session: sid,
			headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"},
			body:    fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, i)})
		if body := readAll(t, resp); resp.StatusCode != http.StatusOK || strings.Contains(string(body), "error") {
			t.Fatalf("tools/list %d within the budget: HTTP %d %s", i, resp.StatusCode, body)
		}
	}
	resp := limited.do(rawRequest{path: "/mcp", token: viewer, agent: "claude-code", session: sid,
		headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"}, body: `{"jsonrpc":"2.0","id":99,"method":"tools/list"}`})
	if body := readAll(t, resp); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("request past the budget: HTTP %d %s, want 429", resp.StatusCode, body)
	}
}

// TestFederatedPrefixProblems: a routing table whose federated prefixes
// would route one name to two backends is refused (start, reload and
// admin writes go through federatedProblems), naming the key.
func TestFederatedPrefixProblems(t *testing.T) {
	x, xdot, empty := "x", "x.", ""
	g := &Gateway{server: config.Server{FederatedPath: "/mcp"}}
	for _, tc := range []struct {
		name     string
		backends map[string]config.Backend
		want     string
	}{
		{"defaults", map[string]config.Backend{"a": {}, "b": {}}, ""},
		{"one unprefixed", map[string]config.Backend{"a": {FederatedPrefix: &empty}, "b": {}}, ""},
		{"two unprefixed", map[string]config.Backend{"a": {FederatedPrefix: &empty}, "b": {FederatedPrefix: &empty}}, "backends.b.federated_prefix"},
		{"prefix of another", map[string]config.Backend{"a": {FederatedPrefix: &x}, "b": {FederatedPrefix: &xdot}}, "backends.b.federated_prefix"},
		{"a default begun by another", map[string]config.Backend{"a": {}, "b": {FederatedPrefix: &[]string{"a__b"}[0]}}, "backends.b.federated_prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, b := range tc.backends {
				b.Paths = []string{"/" + name}
				tc.backends[name] = b
			}
			got := strings.Join(g.federatedProblems(tc.backends), "; ")
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFederatedSetLevelRefused: when no backend of the session takes
// logging/setLevel (the demo backends declare no logging), the client gets
// an error naming each, not a success.
func TestFederatedSetLevelRefused(t *testing.T) {
	h, _ := federatedHarness(t)
	viewer := h.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, claudeClient)
	sid := h.openSession("/mcp", viewer, "claude-code")
	resp := h.do(rawRequest{path: "/mcp", token: viewer, agent: "claude-code", session: sid,
		headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"},
		body:    `{"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"debug"}}`})
	msgs := rpcMessages(t, resp)
	if len(msgs) != 1 {
		t.Fatalf("HTTP %d: %v", resp.StatusCode, msgs)
	}
	code, msg := rpcErrorCode(msgs[0])
	if code != -32010 || !strings.Contains(msg, "no backend of the session took logging/setLevel") ||
		!strings.Contains(msg, "employees: ") || !strings.Contains(msg, "notes: ") {
		t.Fatalf("logging/setLevel with no backend taking it: %d %q", code, msg)
	}
}
