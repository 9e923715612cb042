package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/testutil"
)

// fakeGateway answers initialize with JSON (and a session), tools/call with
// SSE (a notification, then the answer), notifications with 202; it takes
// only the bearer token "good" and records what it got.
type fakeGateway struct {
	mu      sync.Mutex
	bodies  []string
	headers []http.Header
	// stream: GET answers one SSE event and ends (else 405); gets records
	// each GET's Last-Event-ID, deletes each DELETE's session.
	stream  bool
	gets    []string
	deletes []string
	// opened counts the sessions handed out (s-1, s-2, …); a session in
	// ended is answered 404, as a gateway does after it expired.
	opened int
	ended  map[string]bool
}

func (f *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/oauth2/token":
		_ = r.ParseForm()
		if r.PostForm.Get("grant_type") != "refresh_token" || r.PostForm.Get("refresh_token") != "rt1" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"good","token_type":"Bearer","expires_in":3600,"refresh_token":"rt2"}`)
		return
	case "/mcp":
	default:
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer good" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", resource_metadata="http://`+r.Host+`/.well-known/oauth-protected-resource/mcp"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	f.mu.Lock()
	stream := f.stream
	if sid := r.Header.Get("Mcp-Session-Id"); f.ended[sid] {
		f.mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodGet:
		f.gets = append(f.gets, r.Header.Get("Last-Event-ID"))
	case http.MethodDelete:
		f.deletes = append(f.deletes, r.Header.Get("Mcp-Session-Id"))
	}
	f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && stream && strings.HasPrefix(r.Header.Get("Mcp-Session-Id"), "s-"):
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "id: g1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n")
		return
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusOK)
		return
	case r.Method != http.MethodPost:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, string(body))
	f.headers = append(f.headers, r.Header.Clone())
	f.mu.Unlock()
	var env envelope
	_ = json.Unmarshal(body, &env)
	switch env.Method {
	case "initialize":
		f.mu.Lock()
		f.opened++
		w.Header().Set("Mcp-Session-Id", fmt.Sprintf("s-%d", f.opened))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":`+string(env.ID)+`,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"fake","version":"1"},"big":1e400}}`)
	case "tools/call":
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n")
		_, _ = io.WriteString(w, "id: 7\ndata: {\"jsonrpc\":\"2.0\",\ndata: \"id\":"+string(env.ID)+",\"result\":{\"content\":[]}}\n\n")
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

// fakeSessionAnswers is what the client reads of fakeGateway's answers to
// initialize (id 1) and a tools/call (id "two"), as they were written.
var fakeSessionAnswers = []string{
	`{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"fake","version":"1"},"big":1e400}}`,
	`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}`,
	`{"jsonrpc":"2.0","id":"two","result":{"content":[]}}`,
}

func TestBridgeRelaysAndRefreshes(t *testing.T) {
	f := &fakeGateway{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "t.json")
	seed := &State{Gateway: srv.URL + "/mcp", ClientID: "c1", TokenEndpoint: srv.URL + "/oauth2/token",
		AccessToken: "stale", RefreshToken: "rt1", Expiry: time.Now().Add(time.Hour)}
	if err := seed.Save(tokenFile); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth := &Auth{GatewayURL: srv.URL + "/mcp", TokenFile: tokenFile, ClientName: "test", HTTP: srv.Client(), Log: log}
	b := &Bridge{URL: srv.URL + "/mcp", Auth: auth, HTTP: srv.Client(), Log: log}

	lines := []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","n":1.50,"x":"\u00e9"}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":"two","method":"tools/call","params":{"name":"echo","arguments":{}}}`,
	}
	var out bytes.Buffer
	// All lines at once: the bridge keeps their order on the way out.
	if err := b.Run(t.Context(), strings.NewReader(strings.Join(lines, "\n")+"\n"), &syncWriter{w: &out}); err != nil {
		t.Fatal(err)
	}

	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := fakeSessionAnswers
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Join(f.bodies, "\n") != strings.Join(lines, "\n") {
		t.Errorf("the gateway got:\n%s\nwant the lines as written", strings.Join(f.bodies, "\n"))
	}
	for i, h := range f.headers[1:] {
		if h.Get("Mcp-Session-Id") != "s-1" || h.Get("MCP-Protocol-Version") != "2025-06-18" || !strings.Contains(h.Get("Accept"), "text/event-stream") {
			t.Errorf("message %d headers %v", i+1, h)
		}
	}
	s, err := LoadState(tokenFile, srv.URL+"/mcp")
	if err != nil {
		t.Fatal(err)
	}
	if s.AccessToken != "good" || s.RefreshToken != "rt2" || s.Refreshes != 1 || s.Logins != 0 {
		t.Errorf("after the 401: refreshes %d logins %d, rotated %v", s.Refreshes, s.Logins, s.RefreshToken == "rt2")
	}
}

func TestBridgeGETStreamAndDelete(t *testing.T) {
	f := &fakeGateway{stream: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "t.json")
	if err := (&State{Gateway: srv.URL + "/mcp", AccessToken: "good"}).Save(tokenFile); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth := &Auth{GatewayURL: srv.URL + "/mcp", TokenFile: tokenFile, HTTP: srv.Client(), Log: log}
	b := &Bridge{URL: srv.URL + "/mcp", Auth: auth, HTTP: srv.Client(), Log: log}
	pr, pw := io.Pipe()
	out := &syncWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	go func() { done <- b.Run(t.Context(), pr, out) }()
	_, _ = io.WriteString(pw, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`+"\n")
	// The stream ends after its event; the bridge opens it again (after a
	// second) with the last event id.
	deadline := time.Now().Add(15 * time.Second)
	for {
		f.mu.Lock()
		reopened := len(f.gets) >= 2
		f.mu.Unlock()
		if reopened || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`+"\n") {
		t.Errorf("stdout lacks the stream's notification:\n%s", out.String())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.gets) < 2 || f.gets[0] != "" || f.gets[1] != "g1" {
		t.Errorf("GETs with Last-Event-ID %q, want \"\" then g1", f.gets)
	}
	if len(f.deletes) != 1 || f.deletes[0] != "s-1" {
		t.Errorf("DELETEs %q, want the session ended once", f.deletes)
	}
}

func TestBridgeAnswersRequestsWhenTheGatewayIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/mcp"
	ln.Close()
	b := &Bridge{URL: url, HTTP: http.DefaultClient, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	in := strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}` + "\n" + `{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\nnot json\n")
	var out bytes.Buffer
	if err := b.Run(t.Context(), in, &syncWriter{w: &out}); err != nil {
		t.Fatal(err)
	}
	var answers []struct {
		ID    json.RawMessage `json:"id"`
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	for l := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		var one struct {
			ID    json.RawMessage `json:"id"`
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(l), &one); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		answers = append(answers, one)
	}
	if len(answers) != 2 {
		t.Fatalf("want an error for the request and one for the line that is not JSON, none for the notification:\n%s", out.String())
	}
	byID := map[string]int{}
	for _, a := range answers {
		byID[string(a.ID)] = a.Error.Code
		if string(a.ID) == "7" && !strings.Contains(a.Error.Message, "cannot be reached") {
			t.Errorf("message %q", a.Error.Message)
		}
	}
	if byID["7"] != -32603 || byID["null"] != -32700 {
		t.Errorf("answers %s", out.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestBridgeEndsOnSignalWithStdinOpen(t *testing.T) {
	b := &Bridge{URL: "http://127.0.0.1:1/mcp", HTTP: http.DefaultClient, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, pr, &syncWriter{w: &bytes.Buffer{}}) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v, want a normal end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end on its context while stdin stayed open")
	}
}

// TestBridgeReopensEndedSession: when the gateway answers 404 for the
// session (it expired), the bridge opens a new one with the client's own
// initialize, whose answer the client never sees a second time, and sends
// the message again in it.
func TestBridgeReopensEndedSession(t *testing.T) {
	f := &fakeGateway{ended: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	b := loggedInBridge(t, srv)
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`
	initialized := `{"jsonrpc":"2.0","method":"notifications/initialized"}`
	call := `{"jsonrpc":"2.0","id":"two","method":"tools/call","params":{"name":"echo"}}`
	f.mu.Lock()
	f.stream = false
	f.mu.Unlock()

	pr, pw := io.Pipe()
	out := &syncWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	go func() { done <- b.Run(t.Context(), pr, out) }()
	_, _ = io.WriteString(pw, initialize+"\n"+initialized+"\n")
	testutil.Eventually(t, 30*time.Second, "the gateway got initialize and initialized", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.bodies) == 2
	})
	f.mu.Lock()
	f.ended["s-1"] = true
	f.mu.Unlock()
	_, _ = io.WriteString(pw, call+"\n")
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := fakeSessionAnswers
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if wantBodies := []string{initialize, initialized, initialize, initialized, call}; strings.Join(f.bodies, "\n") != strings.Join(wantBodies, "\n") {
		t.Errorf("the gateway got:\n%s\nwant:\n%s", strings.Join(f.bodies, "\n"), strings.Join(wantBodies, "\n"))
	}
	if sid := f.headers[len(f.headers)-1].Get("Mcp-Session-Id"); sid != "s-2" {
		t.Errorf("the call went again in session %q, want the new s-2", sid)
	}
	if len(f.deletes) != 1 || f.deletes[0] != "s-2" {
		t.Errorf("DELETEs %q, want the new session ended", f.deletes)
	}
}

// TestBridgeKeepsOrder: messages the client writes back to back reach the
// gateway in that order, requests among them.
func TestBridgeKeepsOrder(t *testing.T) {
	f := &fakeGateway{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	b := loggedInBridge(t, srv)
	lines := []string{`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}`}
	var notifications []string
	for i := range 40 {
		n := fmt.Sprintf(`{"jsonrpc":"2.0","method":"notifications/message","params":{"n":%d}}`, i)
		notifications = append(notifications, n)
		lines = append(lines, n)
		if i%10 == 0 {
			lines = append(lines, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{}}`, i+1))
		}
	}
	if err := b.Run(t.Context(), strings.NewReader(strings.Join(lines, "\n")+"\n"), &syncWriter{w: &bytes.Buffer{}}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var got []string
	for _, body := range f.bodies {
		if strings.Contains(body, "notifications/message") {
			got = append(got, body)
		}
	}
	if strings.Join(got, "\n") != strings.Join(notifications, "\n") {
		t.Errorf("notifications reached the gateway in another order:\n%s", strings.Join(got, "\n"))
	}
}

// loggedInBridge is a bridge to srv's /mcp holding the token it takes.
func loggedInBridge(t *testing.T, srv *httptest.Server) *Bridge {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "t.json")
	if err := (&State{Gateway: srv.URL + "/mcp", AccessToken: "good"}).Save(tokenFile); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth := &Auth{GatewayURL: srv.URL + "/mcp", TokenFile: tokenFile, HTTP: srv.Client(), Log: log}
	return &Bridge{URL: srv.URL + "/mcp", Auth: auth, HTTP: srv.Client(), Log: log}
}
