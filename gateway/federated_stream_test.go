package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// liveBackend is an mcp-go backend on 127.0.0.1 whose tool talks to the
// client mid-call (progress, logging, elicitation, sampling) and whose GET
// stream carries notifications. restart swaps in a fresh server, which
// knows none of the old sessions (a backend that restarted).
type liveBackend struct {
	name    string
	srv     atomic.Pointer[server.MCPServer]
	handler atomic.Pointer[http.Handler]
	http    *httptest.Server
	gets    atomic.Int32 // GET streams open now
	noGet   atomic.Bool  // answer GET with 405, as a backend without a stream
	answers chan string  // what interact heard from the client
	mu      sync.Mutex
	methods []string // methods of the notifications POSTed to it
}

func (b *liveBackend) notified() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.methods)
}

func startLive(t *testing.T, name string) *liveBackend {
	t.Helper()
	b := &liveBackend{name: name, answers: make(chan string, 10)}
	b.restart()
	b.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && b.noGet.Load() {
			http.Error(w, "no GET stream here", http.StatusMethodNotAllowed)
			return
		}
		if r.Method == http.MethodGet {
			b.gets.Add(1)
			defer b.gets.Add(-1)
		}
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			if json.Unmarshal(body, &m) == nil && m.ID == nil && strings.HasPrefix(m.Method, "notifications/") {
				b.mu.Lock()
				b.methods = append(b.methods, m.Method)
				b.mu.Unlock()
			}
		}
		(*b.handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(b.http.Close)
	return b
}

func (b *liveBackend) restart() {
	//lint:ignore SA1019 the federated endpoint relays the 2025-11-25 revision's server requests and GET stream, which this backend/client must use
	legacy := server.WithLegacyServerInitiatedRequests()
	s := server.NewMCPServer(b.name, "1", server.WithToolCapabilities(true), server.WithResourceCapabilities(true, true),
		server.WithLogging(), legacy)
	s.AddTool(mcpgo.NewTool("hello", mcpgo.WithDescription("Says hello.")), func(context.Context, mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		return mcpgo.NewToolResultText("hello from " + b.name), nil
	})
	s.AddTool(mcpgo.NewTool("interact", mcpgo.WithDescription("Asks the client a question and a model, reporting progress.")), b.interact)
	var h http.Handler = server.NewStreamableHTTPServer(s, server.WithStateful(true))
	b.srv.Store(s)
	b.handler.Store(&h)
}

func (b *liveBackend) interact(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	srv := server.ServerFromContext(ctx)
	if req.Params.Meta != nil && req.Params.Meta.ProgressToken != nil {
		_ = srv.SendNotificationToClient(ctx, "notifications/progress", map[string]any{"progressToken": req.Params.Meta.ProgressToken, "progress": 1, "total": 2})
	}
	_ = srv.SendNotificationToClient(ctx, "notifications/message", map[string]any{"level": "info", "logger": b.name, "data": "halfway"})
	el, err := srv.RequestElicitation(ctx, mcpgo.ElicitationRequest{Params: mcpgo.ElicitationParams{Message: "favourite colour?",
		RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"colour": map[string]any{"type": "string"}}}}})
	if err != nil {
		return nil, fmt.Errorf("elicitation: %w", err)
	}
	b.answers <- "elicitation " + string(el.Action) + " " + fmt.Sprint(el.Content)
	//lint:ignore SA1019 the federated endpoint relays the 2025-11-25 revision's server requests and GET stream, which this backend/client must use
	sm, err := srv.RequestSampling(ctx, mcpgo.CreateMessageRequest{CreateMessageParams: mcpgo.CreateMessageParams{
		Messages: []mcpgo.SamplingMessage{{Role: mcpgo.RoleUser, Content: mcpgo.NewTextContent("say hi")}}, MaxTokens: 10}})
	if err != nil {
		return nil, fmt.Errorf("sampling: %w", err)
	}
	text := ""
	if tc, ok := sm.Content.(mcpgo.TextContent); ok {
		text = tc.Text
	}
	b.answers <- "sampling " + sm.Model + " " + text
	return mcpgo.NewToolResultText(fmt.Sprintf("colour=%v model=%s", el.Content, sm.Model)), nil
}

// notify sends a list_changed and a resources/updated to every session of b
// (its GET streams).
func (b *liveBackend) notify() {
	s := b.srv.Load()
	s.SendNotificationToAllClients(string(mcpgo.MethodNotificationToolsListChanged), nil)
	s.SendNotificationToAllClients(mcpgo.MethodNotificationResourceUpdated, map[string]any{"uri": "file:///" + b.name + ".txt"})
}

// streamHarness is federatedHarness with two live backends beside the demo
// ones, all reachable by claude-code.
func streamHarness(t *testing.T, access ...string) (*harness, func() []policy.Record, *liveBackend, *liveBackend) {
	t.Helper()
	if access == nil {
		access = []string{"employees", "notes", "live", "live2"}
	}
	live, live2 := startLive(t, "live"), startLive(t, "live2")
	engine, records := recordingEngine(t)
	h := newHarness(t, harnessOptions{authorizer: engine, mutate: func(c *config.Config) {
		c.Server.FederatedPath = "/mcp"
		// Pings every second: a client that left is noticed at the next
		// write, well within the tests' polling.
		c.Server.StreamWriteTimeout = 2 * time.Second
		for _, b := range []*liveBackend{live, live2} {
			c.Backends[b.name] = config.Backend{URL: b.http.URL, Paths: []string{"/" + b.name}, AuthMethod: "none", TimeoutSeconds: 30}
		}
		c.Agents["claude-code"] = claudeCodeAgent([]string{"mcp:read", "mcp:write"}, access...)
	}})
	return h, records, live, live2
}

// answering answers elicitations and sampling requests, remembering them.
type answering struct {
	person
	models []string
}

func (a *answering) CreateMessage(_ context.Context, req mcpgo.CreateMessageRequest) (*mcpgo.CreateMessageResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.models = append(a.models, fmt.Sprint(len(req.Messages)))
	return &mcpgo.CreateMessageResult{Model: "test-model", SamplingMessage: mcpgo.SamplingMessage{Role: mcpgo.RoleAssistant, Content: mcpgo.NewTextContent("hi")}}, nil
}

// notes collects the client's notifications.
type notes struct {
	mu  sync.Mutex
	got []mcpgo.JSONRPCNotification
}

func (n *notes) add(x mcpgo.JSONRPCNotification) {
	n.mu.Lock()
	n.got = append(n.got, x)
	n.mu.Unlock()
}

func (n *notes) find(method string, match func(map[string]any) bool) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range n.got {
		if x.Method == method && (match == nil || match(x.Params.AdditionalFields)) {
			return true
		}
	}
	return false
}

// fedClient is an mcp-go client on /mcp answering server requests with a.
func fedClient(ctx context.Context, t *testing.T, h *harness, token string, a *answering, n *notes, listen bool) *client.Client {
	t.Helper()
	topts := []transport.StreamableHTTPCOption{transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token, "X-Agent-ID": "claude-code"})}
	if listen {
		//lint:ignore SA1019 the federated endpoint relays the 2025-11-25 revision's server requests and GET stream, which this backend/client must use
		topts = append(topts, transport.WithContinuousListening())
	}
	tr, err := transport.NewStreamableHTTP(h.url+"/mcp", topts...)
	if err != nil {
		t.Fatal(err)
	}
	var opts []client.ClientOption
	if a != nil {
		opts = append(opts, client.WithElicitationHandler(a), client.WithSamplingHandler(a))
	}
	c := client.NewClient(tr, opts...)
	t.Cleanup(func() { _ = c.Close() })
	if n != nil {
		c.OnNotification(n.add)
	}
	initialize(ctx, t, c)
	return c
}

// TestFederatedStreamedCall: a call through /mcp relays, as they come, the
// backend's progress and logging, and its elicitation and sampling
// requests, whose answers reach the backend; the call's decision record is
// the backend path's.
func TestFederatedStreamedCall(t *testing.T) {
	h, records, live, _ := streamHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	super := h.token("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, claudeClient)
	a := &answering{person: person{answer: mcpgo.ElicitationResponseActionAccept}}
	n := &notes{}
	// mcp-go's server sends elicitation on the call's own stream but
	// sampling on its GET stream only: the client listens, so the sampling
	// request comes through the federated GET merge.
	fed := fedClient(ctx, t, h, super, a, n, true)
	testutil.Eventually(t, 30*time.Second, "live's GET stream", func() bool { return live.gets.Load() == 1 })
	req := mcpgo.CallToolRequest{}
	req.Params.Name = "live__interact"
	req.Params.Meta = &mcpgo.Meta{ProgressToken: "p-1"}
	res, err := fed.CallTool(ctx, req)
	if err != nil || res.IsError {
		t.Fatalf("live__interact: %+v %v", res, err)
	}
	if text := res.Content[0].(mcpgo.TextContent).Text; !strings.Contains(text, "model=test-model") {
		t.Fatalf("live__interact answered %q", text)
	}
	for _, want := range []string{"elicitation accept", "sampling test-model hi"} {
		select {
		case got := <-live.answers:
			if !strings.HasPrefix(got, want) {
				t.Fatalf("backend heard %q, want %q", got, want)
			}
		default:
			t.Fatalf("backend heard no %q", want)
		}
	}
	if len(a.questions) != 1 || a.questions[0] != "favourite colour?" || len(a.models) != 1 {
		t.Fatalf("client was asked %q and sampled %v", a.questions, a.models)
	}
	if !n.find("notifications/progress", func(p map[string]any) bool { return p["progressToken"] == "p-1" }) {
		t.Errorf("no progress notification for p-1: %+v", n.got)
	}
	if !n.find("notifications/message", func(p map[string]any) bool { return p["data"] == "halfway" }) {
		t.Errorf("no logging notification: %+v", n.got)
	}

	// The same call on the backend's own path is decided the same way.
	own := h.client("/live", super, "claude-code")
	initialize(ctx, t, own)
	if res, err := callTool(ctx, own, "hello", nil); err != nil || res.IsError {
		t.Fatalf("hello on /live: %+v %v", res, err)
	}
	if res, err := callTool(ctx, fed, "live__hello", nil); err != nil || res.IsError {
		t.Fatalf("live__hello: %+v %v", res, err)
	}
	var hellos []policy.Record
	for _, r := range records() {
		if r.Query == "decision" && r.Tool == "hello" {
			hellos = append(hellos, r)
		}
	}
	if len(hellos) != 2 || !hellos[0].Allow || hellos[0].Backend != "live" || hellos[1].Backend != "live" ||
		!slices.Equal(hellos[0].Reasons, hellos[1].Reasons) || hellos[0].Allow != hellos[1].Allow {
		t.Fatalf("decision records of hello on /live and through /mcp: %+v", hellos)
	}
}

// TestFederatedGetStream: one GET on /mcp merges the GET streams of the
// session's backends; one backend's stream ending leaves the other on, and
// the client leaving ends every backend stream with no goroutine left.
func TestFederatedGetStream(t *testing.T) {
	h, _, live, live2 := streamHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before := runtime.NumGoroutine()
	super := h.token("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, claudeClient)
	n := &notes{}
	fed := fedClient(ctx, t, h, super, nil, n, true)
	init := fed.GetServerCapabilities()
	if init.Tools == nil || !init.Tools.ListChanged {
		t.Errorf("initialize does not advertise tools.listChanged: %+v", init.Tools)
	}
	testutil.Eventually(t, 30*time.Second, "both backends' GET streams", func() bool { return live.gets.Load() == 1 && live2.gets.Load() == 1 })
	updated := func(b string) func(map[string]any) bool {
		return func(p map[string]any) bool { return p["uri"] == "mcpgw."+b+"+file:///"+b+".txt" }
	}
	testutil.Eventually(t, 30*time.Second, "notifications from both backends", func() bool {
		live.notify()
		live2.notify()
		return n.find(string(mcpgo.MethodNotificationResourceUpdated), updated("live")) &&
			n.find(string(mcpgo.MethodNotificationResourceUpdated), updated("live2")) &&
			n.find(string(mcpgo.MethodNotificationToolsListChanged), nil)
	})

	// live2's stream ends (its connections cut): live's goes on.
	live2.http.CloseClientConnections()
	testutil.Eventually(t, 30*time.Second, "live2's stream to end", func() bool { return live2.gets.Load() == 0 })
	n.mu.Lock()
	n.got = nil
	n.mu.Unlock()
	testutil.Eventually(t, 30*time.Second, "live's notifications after live2 left", func() bool {
		live.notify()
		return n.find(string(mcpgo.MethodNotificationResourceUpdated), updated("live"))
	})

	// The client leaves: live's backend stream ends too, and every
	// goroutine of the merge with it.
	mergeRuns := func() bool {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		return strings.Contains(stacks, "readBackendEvents") || strings.Contains(stacks, "gateway.(*Gateway).stream.func")
	}
	if !mergeRuns() {
		t.Fatal("no merge goroutine seen while the stream is open: the check below would prove nothing")
	}
	_ = fed.Close()
	testutil.Eventually(t, 30*time.Second, "live's stream to end after the client left", func() bool { return live.gets.Load() == 0 })
	testutil.Eventually(t, 30*time.Second, "the merge's goroutines to end", func() bool { return !mergeRuns() })
	t.Logf("goroutines before %d, after %d", before, runtime.NumGoroutine())
}

// TestFederatedConfirm: the confirm obligation asks through /mcp (its
// question's id names the backend), and the person's answer decides: a
// decline is refused and never reaches the backend, an accept does.
func TestFederatedConfirm(t *testing.T) {
	h, _, _, _ := streamHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	super := h.token("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, claudeClient)
	count := func(c *client.Client) int {
		res, err := callTool(ctx, c, "employees__list_employees", nil)
		if err != nil || res.IsError {
			t.Fatalf("list_employees: %+v %v", res, err)
		}
		return len(strings.Split(strings.TrimSpace(res.Content[0].(mcpgo.TextContent).Text), "\n"))
	}
	declines := &answering{person: person{answer: mcpgo.ElicitationResponseActionDecline}}
	fed := fedClient(ctx, t, h, super, declines, nil, false)
	before := count(fed)
	if _, err := callTool(ctx, fed, "employees__delete_employee", map[string]any{"id": "e1"}); err == nil || !strings.Contains(err.Error(), "did not confirm") {
		t.Fatalf("declined delete through /mcp: %v", err)
	}
	if len(declines.questions) != 1 || !strings.Contains(declines.questions[0], "Allow delete_employee on employees") {
		t.Fatalf("questions asked: %q", declines.questions)
	}
	if count(fed) != before {
		t.Fatal("a declined delete reached the backend")
	}
	accepts := &answering{person: person{answer: mcpgo.ElicitationResponseActionAccept}}
	fed = fedClient(ctx, t, h, super, accepts, nil, false)
	if res, err := callTool(ctx, fed, "employees__delete_employee", map[string]any{"id": "e1"}); err != nil || res.IsError {
		t.Fatalf("accepted delete through /mcp: %+v %v", res, err)
	}
	if count(fed) != before-1 {
		t.Fatal("the accepted delete did not reach the backend")
	}
	// A client that did not declare elicitation is refused, as on the
	// backend's own path.
	mute := fedClient(ctx, t, h, super, nil, nil, false)
	if _, err := callTool(ctx, mute, "employees__delete_employee", map[string]any{"id": "e2"}); err == nil || !strings.Contains(err.Error(), "elicitation") {
		t.Fatalf("delete from a client that cannot ask: %v", err)
	}
}

// TestFederatedSessionLost: a backend that restarted (and forgot its
// session) is reported by name, and the session's other backends go on.
func TestFederatedSessionLost(t *testing.T) {
	h, _, live, _ := streamHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	super := h.token("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, claudeClient)
	fed := fedClient(ctx, t, h, super, nil, nil, false)
	if res, err := callTool(ctx, fed, "live__hello", nil); err != nil || res.IsError {
		t.Fatalf("live__hello: %+v %v", res, err)
	}
	live.restart()
	_, err := callTool(ctx, fed, "live__hello", nil)
	if err == nil || !strings.Contains(err.Error(), "backend live no longer knows this session") || !strings.Contains(err.Error(), "initialize a new session") {
		t.Fatalf("live__hello after live restarted: %v", err)
	}
	if res, err := callTool(ctx, fed, "employees__get_employee", map[string]any{"id": "e1"}); err != nil || res.IsError {
		t.Fatalf("employees after live restarted: %+v %v", res, err)
	}
}

// TestFederatedIDs: a server request's id reads back to its backend and
// original id exactly, numbers and strings kept apart; anything else is
// refused.
func TestFederatedIDs(t *testing.T) {
	fc := &fedCall{sessions: federatedSession{"live": "s", "notes": ""}}
	// The key is what the strict reader makes of an id: escapes as it
	// writes them, not as encoding/json would ("<" is "\u003c" there).
	idKey := func(id mcpgo.RequestId) string {
		raw, _ := json.Marshal(id)
		msgs, _, err := mcp.ParseReply([]byte(`{"jsonrpc":"2.0","id":` + string(raw) + `,"result":{}}`))
		if err != nil {
			t.Fatal(err)
		}
		return msgs[0].IDKey
	}
	for _, id := range []mcpgo.RequestId{mcpgo.NewRequestId(int64(7)), mcpgo.NewRequestId("7"), mcpgo.NewRequestId("mcpgw-confirm-ab:c"), mcpgo.NewRequestId("<a&b>")} {
		shown := fedIDOut("live", idKey(id))
		b, back, err := fc.fedIDIn(mcpgo.NewRequestId(shown))
		if err != nil || b != "live" || idKey(back) != idKey(id) {
			t.Errorf("%v → %q → %s %v %v", id.Value(), shown, b, back.Value(), err)
		}
	}
	for _, bad := range []any{int64(7), "live", "payroll:7", "live:07", "live:7,\"x\":1", `live:"a`, "live:1.5", "live:null", ""} {
		if b, _, err := fc.fedIDIn(mcpgo.NewRequestId(bad)); err == nil {
			t.Errorf("%v read back as %s", bad, b)
		}
	}
}

// TestFederatedNotifications: the client's cancelled and roots/list_changed
// reach every backend of the session; its progress reaches none.
func TestFederatedNotifications(t *testing.T) {
	h, _, live, live2 := streamHarness(t)
	super := h.token("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, claudeClient)
	sid := h.openSession("/mcp", super, "claude-code")
	pv := map[string]string{"Mcp-Protocol-Version": "2025-06-18"}
	for _, body := range []string{
		`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"x","progress":1}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5,"reason":"changed my mind"}}`,
		`{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`,
	} {
		resp := h.do(rawRequest{path: "/mcp", token: super, agent: "claude-code", session: sid, headers: pv, body: body})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: HTTP %d %s", body, resp.StatusCode, readAll(t, resp))
		}
	}
	want := []string{"notifications/initialized", "notifications/cancelled", "notifications/roots/list_changed"}
	for _, b := range []*liveBackend{live, live2} {
		if got := b.notified(); !slices.Equal(got, want) {
			t.Errorf("%s received %v, want %v", b.name, got, want)
		}
	}
}

// TestFederatedGetWithoutStreams: a backend whose GET answers 405 is left
// out of the merge; when every backend does, the federated GET is 405.
func TestFederatedGetWithoutStreams(t *testing.T) {
	h, _, live, live2 := streamHarness(t, "live", "live2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	super := h.token("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, claudeClient)
	live.noGet.Store(true)
	n := &notes{}
	fedClient(ctx, t, h, super, nil, n, true)
	testutil.Eventually(t, 30*time.Second, "live2's notifications without live's stream", func() bool {
		live2.notify()
		return n.find(string(mcpgo.MethodNotificationResourceUpdated), nil)
	})

	live2.noGet.Store(true)
	sid := h.openSession("/mcp", super, "claude-code")
	resp := h.do(rawRequest{method: http.MethodGet, path: "/mcp", token: super, agent: "claude-code", session: sid,
		headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"}})
	if body := readAll(t, resp); resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), "no backend of this session opens a GET stream") {
		t.Fatalf("GET with no backend stream: HTTP %d %s", resp.StatusCode, body)
	}
}
