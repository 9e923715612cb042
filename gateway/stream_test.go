package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// logBuffer collects the gateway's JSON log lines; safe for its goroutines.
type logBuffer struct{ testutil.SyncBuffer }

// lines are the log records whose msg contains msg.
func (b *logBuffer) lines(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && strings.Contains(fmt.Sprint(m["msg"]), msg) {
			out = append(out, m)
		}
	}
	return out
}

func newLogBuffer() (*logBuffer, *slog.Logger) {
	b := &logBuffer{}
	return b, slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// withBackend routes path /<name> to url and lets claude-code reach it.
func withBackend(name, url string) func(*config.Config) {
	return func(c *config.Config) {
		c.Backends[name] = config.Backend{URL: url, Paths: []string{"/" + name}, AuthMethod: "none", TimeoutSeconds: 30}
		a := c.Agents["claude-code"]
		a.BackendAccess = append(a.BackendAccess, name)
		c.Agents["claude-code"] = a
	}
}

// rawSSEBackend answers every request with the bytes of script written on
// the bare connection after an SSE response head with chunked encoding:
// what a backend process that dies mid-response leaves on the wire.
// Script entries are chunk payloads; end says how the response stops:
// "cut" closes the connection without the last chunk (the process died),
// "clean" sends it (the backend ended the stream on purpose).
func rawSSEBackend(t *testing.T, chunks []string, end string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		for _, c := range chunks {
			fmt.Fprintf(buf, "%x\r\n%s\r\n", len(c), c)
		}
		if end == "clean" {
			fmt.Fprint(buf, "0\r\n\r\n")
		}
		_ = buf.Flush()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/mcp"
}

// A backend that dies mid-stream leaves no request of the client waiting:
// each one it had not answered gets a -32010 error naming the backend, and
// the gateway logs it with the request id.
func TestBackendDyingMidStreamAnswersPending(t *testing.T) {
	const progress = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"working\"}}\n\n"
	answer := func(id int) string {
		return fmt.Sprintf("data: {\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":{}}\n\n", id)
	}
	single := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	batch := `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]`
	for _, tc := range []struct {
		name    string
		chunks  []string
		end     string
		body    string
		results []float64 // ids answered by the backend
		errors  []float64 // ids the gateway must answer with -32010
		message string    // in each error
	}{
		{name: "one event, then the connection drops mid-event",
			chunks: []string{progress, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"res"}, end: "cut",
			body: single, errors: []float64{1}, message: "failed mid-stream"},
		{name: "a last event without its blank line is not an answer",
			chunks: []string{progress, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n"}, end: "cut",
			body: single, errors: []float64{1}, message: "failed mid-stream"},
		{name: "the stream ends cleanly without the answer",
			chunks: []string{progress}, end: "clean",
			body: single, errors: []float64{1}, message: "closed the stream before answering"},
		{name: "a batch half answered",
			chunks: []string{progress, answer(1), "data: {\"jsonrpc\""}, end: "cut",
			body: batch, results: []float64{1}, errors: []float64{2}, message: "failed mid-stream"},
		{name: "everything answered, then the connection drops",
			chunks: []string{progress, answer(1)}, end: "cut",
			body: single, results: []float64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs, logger := newLogBuffer()
			h := newHarness(t, harnessOptions{logger: logger, mutate: withBackend("crashy", rawSSEBackend(t, tc.chunks, tc.end))})
			tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")
			resp := h.do(rawRequest{path: "/crashy", token: tok, agent: "claude-code", body: tc.body,
				headers: map[string]string{"X-Request-ID": "req-crashy-1"}})
			var results, errs []float64
			for _, m := range rpcMessages(t, resp) {
				id, _ := m["id"].(float64)
				switch {
				case m["result"] != nil:
					results = append(results, id)
				case m["error"] != nil:
					e := m["error"].(map[string]any)
					if e["code"] != float64(-32010) || !strings.Contains(fmt.Sprint(e["message"]), "backend crashy") ||
						!strings.Contains(fmt.Sprint(e["message"]), tc.message) {
						t.Errorf("error for id %v = %v, want -32010 naming backend crashy and %q", id, e, tc.message)
					}
					errs = append(errs, id)
				}
			}
			if fmt.Sprint(results) != fmt.Sprint(tc.results) || fmt.Sprint(errs) != fmt.Sprint(tc.errors) {
				t.Fatalf("results for %v and errors for %v; want results %v, errors %v", results, errs, tc.results, tc.errors)
			}
			warned := logs.lines("backend stream ended before answering")
			if len(tc.errors) == 0 {
				if len(warned) != 0 {
					t.Fatalf("a stream that answered everything was logged as lost: %v", warned)
				}
				return
			}
			if len(warned) != 1 || warned[0]["level"] != "WARN" || warned[0]["request_id"] != "req-crashy-1" ||
				warned[0]["backend"] != "crashy" || warned[0]["unanswered"] != float64(len(tc.errors)) {
				t.Fatalf("log = %v, want one WARN naming request req-crashy-1, backend crashy and %d unanswered", warned, len(tc.errors))
			}
		})
	}
}

// floodBackend answers every request (POST or GET) with an SSE stream of
// events of eventBytes each, as fast as its connection takes them, until a
// write fails or the request is cancelled. ended is closed when the handler
// returns; written counts events written.
func floodBackend(t *testing.T, eventBytes int) (url string, ended <-chan struct{}, written *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	filler := strings.Repeat("a", eventBytes)
	event := []byte(`data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"` + filler + `"}}` + "\n\n")
	done := make(chan struct{})
	var once sync.Once
	written = new(atomic.Int64)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer once.Do(func() { close(done) })
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for r.Context().Err() == nil {
			if _, err := w.Write(event); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			written.Add(1)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/mcp", done, written
}

// A client that stops reading loses its stream within a bounded number of
// server.stream_write_timeout periods: the backend's request is cancelled
// (its writes fail), and the gateway holds at most about one event for it
// meanwhile, not a queue of them.
func TestStalledClientLosesItsStream(t *testing.T) {
	const eventBytes = 4 << 20
	const timeout = 200 * time.Millisecond
	// Relaying one event allocates about eight times its size (the reader's
	// growing buffer, the filter's reading and re-encoding), garbage the
	// collector may not have reclaimed yet: 32 to 45 MiB here. Before the
	// fix the gateway also read ahead into fasthttp's pipe (four events
	// plus one blocked write) and the reader's channel: 75 to 100 MiB.
	const heapBound = 16 * eventBytes
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			backend, ended, written := floodBackend(t, eventBytes)
			logs, logger := newLogBuffer()
			h := newHarness(t, harnessOptions{logger: logger, mutate: func(c *config.Config) {
				withBackend("flood", backend)(c)
				c.Server.StreamWriteTimeout = timeout
			}})
			tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")

			runtime.GC()
			base := heapObjects()
			stop := heapPeak()

			conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// A small receive window: the stall starts after little data.
			_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
			body := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
			req := fmt.Sprintf("%s /flood HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nX-Agent-ID: claude-code\r\nX-Request-ID: req-stalled\r\n",
				method, strings.TrimPrefix(h.url, "http://"), tok)
			if method == http.MethodPost {
				req += fmt.Sprintf("Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			} else {
				req += "Accept: text/event-stream\r\n\r\n"
			}
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatal(err)
			}
			// The client never reads. The backend must see its stream end
			// within a bounded number of timeouts (a generous number: the
			// machine is shared), not keep it forever.
			select {
			case <-ended:
			case <-time.After(150 * timeout):
				t.Fatalf("after %v (%d events written) the backend still streams to a client that stopped reading", 150*timeout, written.Load())
			}
			peak := stop()
			if growth := int64(peak) - int64(base); growth > heapBound {
				t.Fatalf("heap grew by %d MiB for one stalled client with %d MiB events, want under %d MiB",
					growth>>20, eventBytes>>20, heapBound>>20)
			}
			testutil.Eventually(t, 10*time.Second, "the stall is logged", func() bool {
				l := logs.lines("client accepted no bytes")
				return len(l) == 1 && l[0]["request_id"] == "req-stalled"
			})
			t.Logf("backend wrote %d events; heap peak +%d MiB", written.Load(), (int64(peak)-int64(base))>>20)
		})
	}
}

// A quiet stream longer than the write timeout is not a stalled one: a
// client that reads keeps it, and the keep-alive connection it used serves
// the next request (the deadline the stream left is cleared).
func TestQuietStreamOutlivesWriteTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"thinking\"}}\n\n")
		_ = rc.Flush()
		// Quiet for several write timeouts: only the gateway's pings flow.
		time.Sleep(8 * timeout)
		_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	h := newHarness(t, harnessOptions{mutate: func(c *config.Config) {
		withBackend("quiet", "http://"+ln.Addr().String()+"/mcp")(c)
		c.Server.StreamWriteTimeout = timeout
	}})
	tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")
	// One connection, reused: the second request runs on the connection
	// whose stream set write deadlines.
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	t.Cleanup(client.CloseIdleConnections)
	post := func(body string, reused *bool) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/quiet", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Agent-ID", "claude-code")
		req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { *reused = i.Reused },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	var reused bool
	msgs := rpcMessages(t, post(`{"jsonrpc":"2.0","id":1,"method":"ping"}`, &reused))
	if len(msgs) != 2 || msgs[1]["result"] == nil {
		t.Fatalf("quiet stream: %v, want the notification and the result", msgs)
	}
	// Idle past the deadline the stream left on the connection, then a
	// request the gateway answers itself, in one write with no deadline
	// of its own (a POST: the client does not retry it elsewhere).
	time.Sleep(3 * timeout)
	resp := post("{not json", &reused)
	body := readAll(t, resp)
	if !reused {
		t.Fatal("the second request did not reuse the connection: the test proves nothing")
	}
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "parse error") {
		t.Fatalf("next request on the stream's connection: %d %s, want the gateway's 400", resp.StatusCode, body)
	}
}
