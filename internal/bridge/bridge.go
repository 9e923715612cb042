// Package bridge is `mcpgw connect`: MCP over stdio (newline-delimited
// JSON-RPC) to a local client, Streamable HTTP to the gateway, with the
// person logged in through the gateway's OAuth facade (auth.go) and the
// tokens kept in a 0600 file (tokens.go).
//
// The HTTP side is written here rather than taken from mcp-go: its
// client transports (transport.StreamableHTTP) take and return typed
// JSONRPCRequest/JSONRPCResponse values, so every message would be decoded
// and encoded again (unknown members and number spellings lost, batches
// refused), and the bridge must relay each message as the client wrote it.
// What remains is small: POST one message, read a JSON or SSE answer
// (internal/mcp's event reader), keep Mcp-Session-Id, hold one GET stream.
package bridge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/mcpgw/mcpgw/internal/mcp"
)

// Bridge relays one stdio client to one gateway MCP URL.
type Bridge struct {
	URL  string
	Auth *Auth // nil: no login (a gateway without OAuth)
	HTTP *http.Client
	Log  *slog.Logger

	out     io.Writer
	outMu   sync.Mutex
	mu      sync.Mutex
	session string
	version string
	getOnce sync.Once
	wg      sync.WaitGroup
}

// maxLine bounds one message read from stdin.
const maxLine = 16 << 20

// envelope is what the bridge reads of a message to do its job: never used
// to re-encode it.
type envelope struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

func (e envelope) isRequest() bool { return e.Method != "" && len(e.ID) > 0 && string(e.ID) != "null" }

// Run relays until in ends (the client closed stdin) or ctx is done, then
// ends the gateway session.
func (b *Bridge) Run(ctx context.Context, in io.Reader, out io.Writer) error {
	b.out = out
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// stdin is read on its own goroutine so that a signal (ctx) ends the
	// bridge even while the client keeps stdin open.
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), maxLine)
		for sc.Scan() {
			select {
			case lines <- bytes.Clone(sc.Bytes()):
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
		close(lines)
	}()
	var err error
	for reading := true; reading; {
		var msg []byte
		select {
		case <-ctx.Done():
			err, reading = ctx.Err(), false
			continue
		case line, ok := <-lines:
			if !ok {
				err, reading = <-readErr, false
				continue
			}
			msg = bytes.TrimSpace(line)
		}
		if len(msg) == 0 {
			continue
		}
		var env envelope
		if msg[0] != '[' {
			if err := json.Unmarshal(msg, &env); err != nil {
				b.writeError(json.RawMessage("null"), -32700, "mcpgw connect: not JSON: "+err.Error())
				continue
			}
		}
		if env.Method == "initialize" {
			b.post(ctx, msg, env) // the session id must be known before anything else is sent
			continue
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.post(ctx, msg, env)
		}()
	}
	if ctx.Err() != nil {
		err = nil // a signal: a normal end, answers in flight abandoned
	} else {
		b.wg.Wait() // stdin ended: the answers in flight still come back
	}
	cancel()
	b.wg.Wait()
	b.closeSession()
	return err
}

// post sends one message (or batch) and relays what comes back.
func (b *Bridge) post(ctx context.Context, msg []byte, env envelope) {
	err := b.postOnce(ctx, msg, env, true)
	if err != nil {
		b.Log.Warn("message not delivered", "method", env.Method, "error", err)
		if env.isRequest() {
			b.writeError(env.ID, -32603, "mcpgw connect: "+err.Error())
		}
	}
}

func (b *Bridge) postOnce(ctx context.Context, msg []byte, env envelope, retry bool) error {
	token, err := b.token(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.URL, bytes.NewReader(msg))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	b.headers(req, token)
	resp, err := b.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("the gateway cannot be reached: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized && retry && b.Auth != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		if err := b.Auth.Unauthorized(ctx, token, resp.Header.Get("WWW-Authenticate")); err != nil {
			return fmt.Errorf("login: %w", err)
		}
		return b.postOnce(ctx, msg, env, false)
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		b.mu.Lock()
		b.session = sid
		b.mu.Unlock()
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case resp.StatusCode == http.StatusAccepted:
		return nil
	case mediaType == "text/event-stream" && resp.StatusCode == http.StatusOK:
		answered, err := b.relayEvents(resp.Body, env)
		if err != nil && !answered {
			return fmt.Errorf("the gateway's stream ended: %w", err)
		}
		if !answered && env.isRequest() {
			return errors.New("the gateway's stream ended without an answer")
		}
	case mediaType == "application/json":
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxLine))
		if err != nil {
			return fmt.Errorf("reading the gateway's answer: %w", err)
		}
		if !looksLikeAnswer(body) {
			return fmt.Errorf("HTTP %d without a JSON-RPC answer", resp.StatusCode)
		}
		b.write(body)
	default:
		if resp.StatusCode == http.StatusNotFound && b.sessionID() != "" {
			return errors.New("the gateway ended the session (HTTP 404); restart the client to begin a new one")
		}
		return fmt.Errorf("HTTP %d (%s)", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if env.Method == "initialize" && resp.StatusCode == http.StatusOK {
		b.startGET(ctx)
	}
	return nil
}

func (b *Bridge) token(ctx context.Context) (string, error) {
	if b.Auth == nil {
		return "", nil
	}
	return b.Auth.Token(ctx)
}

func (b *Bridge) headers(req *http.Request, token string) {
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.session != "" {
		req.Header.Set("Mcp-Session-Id", b.session)
	}
	if b.version != "" {
		req.Header.Set("MCP-Protocol-Version", b.version)
	}
}

func (b *Bridge) sessionID() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.session
}

// looksLikeAnswer: a JSON-RPC message or batch (the gateway's errors of
// refused requests are JSON-RPC errors; an OAuth error body is not).
func looksLikeAnswer(body []byte) bool {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		return json.Valid(body)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	_, ok := m["jsonrpc"]
	return ok
}

// relayEvents writes each event's data to stdout; answered tells whether the
// answer to env's request came.
func (b *Bridge) relayEvents(body io.Reader, env envelope) (answered bool, _ error) {
	er := mcp.NewEventReader(body)
	for {
		ev, err := er.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return answered, nil
			}
			return answered, err
		}
		if !ev.HasData || len(bytes.TrimSpace(ev.Data)) == 0 {
			continue
		}
		b.write(ev.Data)
		if env.isRequest() && !answered {
			var got envelope
			if json.Unmarshal(ev.Data, &got) == nil && got.Method == "" && bytes.Equal(got.ID, env.ID) {
				answered = true
			}
		}
	}
}

// write puts one message on stdout, one line. A message spread over lines
// (pretty-printed JSON in an SSE event) is compacted: only its whitespace
// between tokens changes, which the stdio framing requires.
func (b *Bridge) write(msg []byte) {
	msg = bytes.TrimSpace(msg)
	if bytes.ContainsAny(msg, "\r\n") {
		var c bytes.Buffer
		if json.Compact(&c, msg) != nil {
			b.Log.Warn("dropped a message that is not JSON and spans lines", "bytes", len(msg))
			return
		}
		msg = c.Bytes()
	}
	b.noteVersion(msg)
	b.outMu.Lock()
	defer b.outMu.Unlock()
	_, _ = b.out.Write(append(bytes.Clone(msg), '\n'))
}

// noteVersion keeps the protocol version the gateway's initialize result
// names, for the MCP-Protocol-Version header of later requests.
func (b *Bridge) noteVersion(msg []byte) {
	if !bytes.Contains(msg, []byte(`"protocolVersion"`)) {
		return
	}
	var r struct {
		Result struct {
			ProtocolVersion string `json:"protocolVersion"`
			ServerInfo      any    `json:"serverInfo"`
		} `json:"result"`
	}
	if json.Unmarshal(msg, &r) == nil && r.Result.ProtocolVersion != "" && r.Result.ServerInfo != nil {
		b.mu.Lock()
		b.version = r.Result.ProtocolVersion
		b.mu.Unlock()
	}
}

func (b *Bridge) writeError(id json.RawMessage, code int, message string) {
	msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": message}})
	b.write(msg)
}

// startGET opens the server→client stream once a session exists, and
// reopens it (with Last-Event-ID) while the bridge runs. A gateway or
// backend without one (405) is left alone.
func (b *Bridge) startGET(ctx context.Context) {
	if b.sessionID() == "" {
		return
	}
	b.getOnce.Do(func() {
		go func() {
			lastID, delay := "", time.Second
			for ctx.Err() == nil {
				status, id, err := b.getStream(ctx, lastID)
				if id != "" {
					lastID = id
				}
				if status >= 400 && status < 500 && status != http.StatusUnauthorized && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests {
					b.Log.Debug("no GET stream", "status", status)
					return // none offered (405), refused (403), or the session ended (404)
				}
				if err != nil && ctx.Err() == nil {
					b.Log.Debug("GET stream ended", "status", status, "error", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(delay):
				}
				delay = min(2*delay, 30*time.Second)
			}
		}()
	})
}

func (b *Bridge) getStream(ctx context.Context, lastID string) (int, string, error) {
	token, err := b.token(ctx)
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	b.headers(req, token)
	resp, err := b.HTTP.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized && b.Auth != nil {
		return resp.StatusCode, "", b.Auth.Unauthorized(ctx, token, resp.Header.Get("WWW-Authenticate"))
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	er := mcp.NewEventReader(resp.Body)
	id := ""
	for {
		ev, err := er.Next()
		if err != nil {
			return resp.StatusCode, id, err
		}
		if ev.ID != "" {
			id = ev.ID
		}
		if ev.HasData && len(bytes.TrimSpace(ev.Data)) > 0 {
			b.write(ev.Data)
		}
	}
}

// closeSession ends the gateway session (DELETE), best effort.
func (b *Bridge) closeSession() {
	if b.sessionID() == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	token, err := b.token(ctx)
	if err != nil {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, b.URL, nil)
	if err != nil {
		return
	}
	b.headers(req, token)
	if resp, err := b.HTTP.Do(req); err == nil {
		resp.Body.Close()
	}
}
