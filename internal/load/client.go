package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// protocolVersion is what the client offers in initialize; the server's
// answer is sent as MCP-Protocol-Version afterwards.
const protocolVersion = "2025-06-18"

// maxReply bounds one reply held in memory (a 100,000-tool list is ~20 MB).
const maxReply = 256 << 20

// Client is one MCP client over Streamable HTTP: one session, one request
// at a time, as an agent's client is.
type Client struct {
	url     string
	http    *http.Client
	header  http.Header
	session string
	version string
	nextID  int64
}

// NewClient makes a client for url that sends token (when not empty) as a
// bearer token and agent (when not empty) as X-Agent-ID.
func NewClient(hc *http.Client, url, token, agent string, extra http.Header) *Client {
	h := extra.Clone()
	if h == nil {
		h = http.Header{}
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if agent != "" {
		h.Set("X-Agent-ID", agent)
	}
	return &Client{url: url, http: hc, header: h}
}

// Session is the session id the server issued ("" for a stateless one).
func (c *Client) Session() string { return c.session }

// Initialize opens the session: initialize, then notifications/initialized.
func (c *Client) Initialize(ctx context.Context) error {
	params := map[string]any{
		"protocolVersion": protocolVersion,
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "mcpgw-load", "version": "1"},
	}
	res, err := c.Call(ctx, "initialize", params)
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	var init struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(res, &init); err != nil {
		return fmt.Errorf("initialize result: %w", &Error{Kind: "decode", Err: err})
	}
	c.version = init.ProtocolVersion
	body := []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	resp, err := c.post(ctx, body)
	if err != nil {
		return fmt.Errorf("notifications/initialized: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("notifications/initialized: %w", &Error{Kind: "http_" + strconv.Itoa(resp.StatusCode)})
	}
	return nil
}

// Error is a failed request, classified for the error counts.
type Error struct {
	// Kind is transport, timeout, decode, http_<status> or rpc_<code>.
	Kind string
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Kind
	}
	return e.Kind + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Kind classifies err for the error counts.
func Kind(err error) string {
	var le *Error
	if errors.As(err, &le) {
		return le.Kind
	}
	return "other"
}

// Call sends one request and returns its result, reading a JSON or an SSE
// reply (the response event is the one with the request's id).
func (c *Client) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	c.nextID++
	// Distinct ids: servers refuse a duplicate in-flight id.
	id := c.nextID
	p, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("encode params: %w", err)
	}
	body := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, p)
	resp, err := c.post(ctx, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" && c.session == "" {
		c.session = sid
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil, &Error{Kind: "http_" + strconv.Itoa(resp.StatusCode)}
	}
	var data []byte
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		data, err = responseEvent(resp.Body, id)
	} else {
		data, err = io.ReadAll(io.LimitReader(resp.Body, maxReply))
	}
	if err != nil {
		return nil, classify(ctx, err)
	}
	return decodeReply(data)
}

func (c *Client) post(ctx context.Context, body []byte) (*http.Response, error) {
	return c.do(ctx, http.MethodPost, bytes.NewReader(body), "application/json, text/event-stream")
}

// do sends one request of the session with the client's headers.
func (c *Client) do(ctx context.Context, method string, body io.Reader, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url, body)
	if err != nil {
		return nil, &Error{Kind: "transport", Err: err}
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
	}
	if c.version != "" {
		req.Header.Set("MCP-Protocol-Version", c.version)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, classify(ctx, err)
	}
	return resp, nil
}

// OpenStream opens the session's GET stream and returns once its headers
// arrived; closing the body ends it.
func (c *Client) OpenStream(ctx context.Context) (io.ReadCloser, error) {
	resp, err := c.do(ctx, http.MethodGet, nil, "text/event-stream")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, &Error{Kind: "http_" + strconv.Itoa(resp.StatusCode)}
	}
	return resp.Body, nil
}

func classify(ctx context.Context, err error) error {
	var ne net.Error
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &Error{Kind: "timeout", Err: err}
	}
	return &Error{Kind: "transport", Err: err}
}

// responseEvent reads SSE events until the one answering id, and returns
// its data (the lines of one event joined by newlines, as SSE says).
func responseEvent(r io.Reader, id int64) ([]byte, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxReply)
	want := []byte(`"id":` + strconv.FormatInt(id, 10))
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if bytes.Contains(data, want) || bytes.Contains(data, []byte(`"id": `+strconv.FormatInt(id, 10))) {
				return data, nil
			}
			data = data[:0]
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			v = bytes.TrimPrefix(v, []byte(" "))
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, v...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(data) > 0 && bytes.Contains(data, want) {
		return data, nil
	}
	return nil, &Error{Kind: "decode", Err: errors.New("stream ended without the response")}
}

func decodeReply(data []byte) (json.RawMessage, error) {
	var reply struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &reply); err != nil {
		return nil, &Error{Kind: "decode", Err: err}
	}
	if reply.Error != nil {
		return nil, &Error{Kind: "rpc_" + strconv.Itoa(reply.Error.Code), Err: errors.New(reply.Error.Message)}
	}
	if reply.Result == nil {
		return nil, &Error{Kind: "decode", Err: errors.New("reply has neither result nor error")}
	}
	return reply.Result, nil
}

// NewHTTPClient keeps up to conns idle connections to one host, so each
// of conns clients reuses its own connection.
func NewHTTPClient(conns int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			MaxIdleConns:        conns + 16,
			MaxIdleConnsPerHost: conns + 16,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}
