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
	// initialize is the client's initialize as it wrote it: sent again,
	// its answer kept from the client, when the gateway ends the session.
	initialize []byte
	getRunning bool
	reopenMu   sync.Mutex
	wg         sync.WaitGroup
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
			b.mu.Lock()
			b.initialize = msg
			b.mu.Unlock()
			b.post(ctx, msg, env, nil) // the session id must be known before anything else is sent
			continue
		}
		// The next message waits until this one is on the wire (a request,
		// whose answer may stream for minutes) or answered (a notification
		// or response: 202 at once), so the gateway gets them in the
		// client's order: a notifications/cancelled never overtakes its
		// request, two notifications never swap.
		sent := make(chan struct{})
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.post(ctx, msg, env, sent)
		}()
		select {
		case <-sent:
		case <-ctx.Done():
		}
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

// post sends one message (or batch) and relays what comes back. sent, when
// not nil, is closed once the message is on the wire (a request) or
// answered (anything else), or failed.
func (b *Bridge) post(ctx context.Context, msg []byte, env envelope, sent chan struct{}) {
	var once sync.Once
	done := func() {
		if sent != nil {
			once.Do(func() { close(sent) })
		}
	}
	defer done()
	out := outgoing{msg: msg, env: env, emit: b.write}
	if env.isRequest() {
		out.onSent = done
	}
	err := b.postOnce(ctx, out, true, true)
	if err != nil {
		b.Log.Warn("message not delivered", "method", env.Method, "error", err)
		if env.isRequest() {
			b.writeError(env.ID, -32603, "mcpgw connect: "+err.Error())
		}
	}
}

// outgoing is one message to POST and where its answer goes.
type outgoing struct {
	msg  []byte
	env  envelope
	emit func([]byte) // each message of the answer
	// onSent, when set, is called once the body has been handed to the
	// connection: the message is on its way, though not answered.
	onSent func()
}

// postOnce sends the message once, and again after a login (retryAuth) or
// after opening a new session in place of one the gateway ended
// (retrySession).
func (b *Bridge) postOnce(ctx context.Context, out outgoing, retryAuth, retrySession bool) error {
	msg, env, emit := out.msg, out.env, out.emit
	token, err := b.token(ctx)
	if err != nil {
		return err
	}
	var body io.Reader = bytes.NewReader(msg)
	if out.onSent != nil {
		body = &readThenCall{r: body, f: out.onSent}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.URL, body)
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(msg)) // not chunked: readThenCall hides the length
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	session := b.headers(req, token)
	resp, err := b.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("the gateway cannot be reached: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized && retryAuth && b.Auth != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		if err := b.Auth.Unauthorized(ctx, token, resp.Header.Get("WWW-Authenticate")); err != nil {
			return fmt.Errorf("login: %w", err)
		}
		return b.postOnce(ctx, out, false, retrySession)
	}
	if resp.StatusCode == http.StatusNotFound && session != "" && env.Method != "initialize" {
		// The gateway no longer knows the session (it expired, or its key
		// changed): as the spec asks of a client, start a new one, then
		// send the message again in it, once.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		if !retrySession {
			return errors.New("the gateway ended the new session too (HTTP 404)")
		}
		if err := b.reopen(ctx, session); err != nil {
			return fmt.Errorf("the gateway ended the session (HTTP 404) and a new one could not be opened: %w", err)
		}
		return b.postOnce(ctx, out, retryAuth, false)
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
		answered, err := b.relayEvents(resp.Body, env, emit)
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
		emit(body)
	default:
		return fmt.Errorf("HTTP %d (%s)", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if env.Method == "initialize" && resp.StatusCode == http.StatusOK {
		b.startGET(ctx)
	}
	return nil
}

// readThenCall calls f once r is read to its end: net/http reads a
// request body as it writes it to the connection.
type readThenCall struct {
	r io.Reader
	f func()
}

func (r *readThenCall) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err == io.EOF {
		r.f()
	}
	return n, err
}

func (b *Bridge) token(ctx context.Context) (string, error) {
	if b.Auth == nil {
		return "", nil
	}
	return b.Auth.Token(ctx)
}

// headers sets the request's token, session and revision; it returns the
// session id sent ("" for none).
func (b *Bridge) headers(req *http.Request, token string) string {
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
	return b.session
}

// reopen replaces the session lost (which the gateway answered 404 for)
// with a new one: the client's initialize sent again (its answer not
// relayed: the client has it), then notifications/initialized, then the
// GET stream. Messages that met the 404 at once open one session, not one
// each. What the old session held on the server side (log level,
// subscriptions) is not restored.
func (b *Bridge) reopen(ctx context.Context, lost string) error {
	b.reopenMu.Lock()
	defer b.reopenMu.Unlock()
	b.mu.Lock()
	current, initialize := b.session, b.initialize
	if current == lost {
		b.session = ""
	}
	b.mu.Unlock()
	if current != lost {
		return nil // another message opened the new one already
	}
	if initialize == nil {
		return errors.New("the client's initialize was never seen")
	}
	var env envelope
	_ = json.Unmarshal(initialize, &env)
	quiet := func([]byte) {}
	if err := b.postOnce(ctx, outgoing{msg: initialize, env: env, emit: quiet}, true, false); err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	if b.sessionID() == "" {
		return errors.New("initialize: the gateway gave no session id")
	}
	initialized := []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if err := b.postOnce(ctx, outgoing{msg: initialized, env: envelope{Method: "notifications/initialized"}, emit: quiet}, true, false); err != nil {
		return fmt.Errorf("notifications/initialized: %w", err)
	}
	b.Log.Info("the gateway ended the session: opened a new one")
	return nil
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

// relayEvents gives each event's data to emit; answered tells whether the
// answer to env's request came.
func (b *Bridge) relayEvents(body io.Reader, env envelope, emit func([]byte)) (answered bool, _ error) {
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
		emit(ev.Data)
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
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.session == "" || b.getRunning {
		return
	}
	b.getRunning = true
	// Not in b.wg: the stream lasts until ctx ends, and Run waits on b.wg
	// for the answers in flight when stdin ends.
	go func() {
		defer func() {
			b.mu.Lock()
			b.getRunning = false
			b.mu.Unlock()
		}()
		b.holdGET(ctx)
	}()
}

// holdGET keeps the GET stream open: reopened after it ends, in a new
// session after the gateway ended the old one (404), given up when the
// gateway offers none.
func (b *Bridge) holdGET(ctx context.Context) {
	lastID, delay := "", time.Second
	for ctx.Err() == nil {
		session := b.sessionID()
		status, id, err := b.getStream(ctx, lastID)
		if id != "" {
			lastID = id
		}
		if status == http.StatusNotFound && session != "" {
			if err := b.reopen(ctx, session); err != nil {
				b.Log.Warn("the gateway ended the session and a new one could not be opened", "error", err)
				return
			}
			lastID = "" // event ids belong to the old session's stream
			continue
		}
		if status >= 400 && status < 500 && status != http.StatusUnauthorized && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests {
			b.Log.Debug("no GET stream", "status", status)
			return // none offered (405) or refused (403)
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
