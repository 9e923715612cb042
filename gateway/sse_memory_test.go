package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/mcp"
)

// endlessLineBackend answers every POST with an SSE stream whose first line
// never ends: "data: " and then offered bytes of 'a'. It reports how much
// it wrote, and closes done when its handler returns.
func endlessLineBackend(t *testing.T, offered int64) (url string, written *atomic.Int64, done <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	written = new(atomic.Int64)
	finished := make(chan struct{})
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(finished)
		w.Header().Set("Content-Type", "text/event-stream")
		if _, err := io.WriteString(w, "data: "); err != nil {
			return
		}
		for written.Load() < offered {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return // the gateway stopped reading and closed the connection
			}
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/mcp", written, finished
}

// heapObjects is the heap held by objects, live ones and garbage not yet
// swept: what a burst of allocations costs before a collection.
func heapObjects() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// heapPeak samples heapObjects every few milliseconds until stop is called,
// which returns the peak.
func heapPeak() (stop func() uint64) {
	read := heapObjects
	var peak atomic.Uint64
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(quit)
		<-exited
		return max(peak.Load(), read())
	}
}

// A backend that sends one endless line must not take the gateway's memory:
// the gateway refuses the event once it passes mcp.MaxEventBytes, stops
// reading, and never relays the line. A reader that gathers the whole line
// first (as the gateway once did) holds all of it, and more while growing.
func TestSSEEndlessLineMemoryBound(t *testing.T) {
	const offered = 512 << 20
	const bound = 160 << 20 // 5× the cap; well under what was offered
	backend, written, backendDone := endlessLineBackend(t, offered)
	h := newHarness(t, harnessOptions{mutate: func(c *config.Config) {
		c.Backends["endless"] = config.Backend{URL: backend, Paths: []string{"/endless"}, AuthMethod: "none"}
		a := c.Agents["claude-code"]
		a.BackendAccess = append(a.BackendAccess, "endless")
		c.Agents["claude-code"] = a
	}})
	tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")

	runtime.GC()
	base := heapObjects()
	stop := heapPeak()

	resp := h.do(rawRequest{path: "/endless", token: tok, agent: "claude-code", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
	body := &countingReader{r: resp.Body}
	r := mcp.NewEventReader(body)
	var msgs []map[string]any
	var readErr error
	for range 100 {
		ev, err := r.Next()
		if ev.HasData {
			var m map[string]any
			if json.Unmarshal(ev.Data, &m) != nil {
				t.Fatalf("client got data that is not JSON-RPC (%d bytes, starting %.40q)", len(ev.Data), ev.Data)
			}
			msgs = append(msgs, m)
		}
		if err != nil {
			readErr = err
			break
		}
	}
	peak := stop()
	if readErr == nil {
		t.Fatal("the stream did not end")
	}
	if errors.Is(readErr, mcp.ErrEventTooLarge) || body.n > 1<<20 {
		t.Fatalf("the client was sent the line: %d bytes, %v", body.n, readErr)
	}
	// Either the stream was cut or the request was answered with an error.
	for _, m := range msgs {
		if m["result"] != nil || m["error"] == nil {
			t.Fatalf("client got %v, want only errors", m)
		}
	}

	if growth := int64(peak) - int64(base); growth > bound {
		t.Fatalf("heap grew by %d MiB while the backend offered a %d MiB line, want under %d MiB", growth>>20, offered>>20, bound>>20)
	}

	// The gateway closed the connection: the backend's writes fail long
	// before it is drained. The wait only bounds a broken gateway.
	select {
	case <-backendDone:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the backend is still writing after %d MiB: the gateway keeps reading", written.Load()>>20)
	}
	if w := written.Load(); w >= offered {
		t.Fatalf("the gateway read all %d MiB of the line", w>>20)
	}
	t.Logf("heap peak +%d MiB; backend wrote %d MiB of %d; client got %d bytes, %d messages, end %v",
		(int64(peak)-int64(base))>>20, written.Load()>>20, offered>>20, body.n, len(msgs), readErr)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
