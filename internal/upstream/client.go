// Package upstream talks to backend MCP servers: it sends a message on with
// the backend's own credential, retries once with a fresh credential when the
// backend refuses it, and seals the sessions the gateway hands to clients.
package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Client forwards requests to backends over one pooled transport.
type Client struct {
	http *http.Client
}

// NewClient builds a Client. It sets no http.Client.Timeout: that would cut
// long SSE streams; the header phase is bounded per request instead.
func NewClient() *Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Compression would make the transport buffer and hide SSE framing.
		DisableCompression: true,
	}
	return &Client{http: &http.Client{
		Transport: tr,
		// Redirects would carry the backend credential somewhere unconfigured.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Request is one message on its way to a backend.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
	// Timeout bounds the wait for the response headers (and, for JSON
	// replies, the caller bounds the body with the same deadline).
	Timeout time.Duration
}

// BackendError is a backend that could not be reached or did not answer in time.
type BackendError struct {
	Backend string
	Timeout bool
	Err     error
}

func (e *BackendError) Error() string {
	if e.Timeout {
		return fmt.Sprintf("backend %s did not answer in time", e.Backend)
	}
	return fmt.Sprintf("backend %s is unreachable: %v", e.Backend, e.Err)
}

func (e *BackendError) Unwrap() error { return e.Err }

var errHeaderTimeout = errors.New("backend header timeout")

// Send forwards r with the backend's credential. On a 401 it drops the
// cached credential and retries once. The response body stays bound to ctx:
// the caller cancels ctx when the client goes away.
func (c *Client) Send(ctx context.Context, inj Injector, caller Caller, r Request) (*http.Response, error) {
	resp, err := c.sendOnce(ctx, inj, caller, r)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	drain(resp)
	inj.Invalidate(ctx, caller)
	return c.sendOnce(ctx, inj, caller, r)
}

func (c *Client) sendOnce(ctx context.Context, inj Injector, caller Caller, r Request) (*http.Response, error) {
	name := caller.Backend.Name
	reqCtx, cancel := context.WithCancelCause(ctx)
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(reqCtx, r.Method, r.URL, body)
	if err != nil {
		cancel(nil)
		return nil, &BackendError{Backend: name, Err: fmt.Errorf("build request: %w", err)}
	}
	req.Header = r.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	// The credential step gets its own span: token exchanges are the slow,
	// remote part of a cold request.
	credCtx, span := trace.SpanFromContext(ctx).TracerProvider().Tracer("github.com/mcpgw/mcpgw").Start(reqCtx, "mcpgw.exchange")
	err = inj.Inject(credCtx, req, caller)
	span.End()
	if err != nil {
		cancel(nil)
		var ce *CredentialError
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, &CredentialError{Backend: name, Err: err}
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	timer := time.AfterFunc(timeout, func() { cancel(errHeaderTimeout) })
	resp, err := c.http.Do(req)
	if err != nil {
		timer.Stop()
		cause := context.Cause(reqCtx)
		cancel(nil)
		if errors.Is(cause, errHeaderTimeout) {
			return nil, &BackendError{Backend: name, Timeout: true, Err: err}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("backend %s: %w", name, ctx.Err())
		}
		return nil, &BackendError{Backend: name, Err: err}
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, ctx: reqCtx, timer: timer, cancel: cancel}
	return resp, nil
}

// StopDeadline lifts the header deadline from resp's body: SSE streams may
// run long. JSON replies keep it, so a backend that stalls mid-body is cut.
func StopDeadline(resp *http.Response) {
	if c, ok := resp.Body.(*cancelOnClose); ok {
		c.timer.Stop()
	}
}

// TimedOut reports whether resp's body was cut by its deadline.
func TimedOut(resp *http.Response) bool {
	if c, ok := resp.Body.(*cancelOnClose); ok {
		return errors.Is(context.Cause(c.ctx), errHeaderTimeout)
	}
	return false
}

type cancelOnClose struct {
	io.ReadCloser
	ctx    context.Context
	timer  *time.Timer
	cancel context.CancelCauseFunc
}

func (c *cancelOnClose) Close() error {
	c.timer.Stop()
	err := c.ReadCloser.Close()
	c.cancel(nil)
	return err
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}
