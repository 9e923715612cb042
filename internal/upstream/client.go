// Package upstream talks to backend MCP servers: it sends a message on with
// the backend's own credential, retries once with a fresh credential when the
// backend refuses it (and backs off when it refuses that one too), and seals
// the sessions the gateway hands to clients.
package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgw/mcpgw/internal/secrets"
)

// Client forwards requests to backends over one pooled transport.
type Client struct {
	http *http.Client
	// refused remembers credentials a backend refused even fresh.
	refused *refusals
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
	}, refused: newRefusals(time.Now)}
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
	// The cause names the URL the client dialled (net/http prints it with
	// its query), and this text reaches callers' 502 bodies and logs: the
	// URL's userinfo and query values are hidden (secrets.Text).
	return secrets.Text(fmt.Sprintf("backend %s is unreachable: %v", e.Backend, e.Err))
}

func (e *BackendError) Unwrap() error { return e.Err }

var errHeaderTimeout = errors.New("backend header timeout")

// RefusedError is a call not sent because the backend refused this
// caller's credential, fresh, a moment ago (see Client.Send).
type RefusedError struct {
	// Status is the backend's answer that started the backoff (401).
	Status int
	// RetryIn is how long calls with this credential still fail fast.
	RetryIn time.Duration
}

func (e *RefusedError) Error() string {
	// Whole seconds, at least one: "0s" would read as "try now".
	wait := max(e.RetryIn.Round(time.Second), time.Second)
	return fmt.Sprintf("the backend refused the gateway's credential (HTTP %d); not tried again for %s", e.Status, wait)
}

// CredentialKeyer is an Injector that can say which credential a caller
// gets: callers with one key share one credential, so a backend that refuses
// it refuses them all. Injectors without it share one credential per
// backend configuration.
type CredentialKeyer interface {
	CredentialKey(c Caller) (key string, ok bool)
}

// Send forwards r with the backend's credential. On a 401 it drops the
// cached credential and retries once. When the fresh credential is refused
// too, that credential (backend and caller credential key) is remembered:
// for a backoff of 5 s, doubling to 60 s while refusals go on, its calls
// fail fast with a *CredentialError wrapping *RefusedError, so a backend
// that always answers 401 no longer costs a token exchange on every call.
// After the backoff one call tries again, with a fresh credential. The
// response body stays bound to ctx: the caller cancels ctx when the client
// goes away.
func (c *Client) Send(ctx context.Context, inj Injector, caller Caller, r Request) (*http.Response, error) {
	key, probing := "", false
	// Computing the key costs a digest; it is needed only while some
	// credential is being refused, or once one is.
	if c.refused.active() {
		key = refusalKey(inj, caller)
		wait, probe := c.refused.check(key)
		if wait > 0 {
			return nil, &CredentialError{Backend: caller.Backend.Name, Err: &RefusedError{Status: http.StatusUnauthorized, RetryIn: wait}}
		}
		probing = probe
	}
	resp, err := c.sendOnce(ctx, inj, caller, r)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode != http.StatusUnauthorized {
		if key != "" {
			c.refused.forget(key)
		}
		return resp, nil
	}
	if !probing {
		// The cached credential may just have expired or been revoked:
		// one retry with a fresh one.
		drain(resp)
		inj.Invalidate(ctx, caller)
		if resp, err = c.sendOnce(ctx, inj, caller, r); err != nil || resp.StatusCode != http.StatusUnauthorized {
			return resp, err
		}
	}
	// Refused with a fresh credential (a probe's credential is fresh: the
	// refused one was dropped when the backoff began).
	if key == "" {
		key = refusalKey(inj, caller)
	}
	c.refused.record(key)
	inj.Invalidate(ctx, caller)
	return resp, nil
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

// Refusal backoff bounds. A refused credential is remembered from the first
// refusal for refusalMin, doubling per refusal up to refusalMax, and is
// forgotten refusalMax after its backoff ends without another refusal.
// maxRefusals bounds the memory whatever callers do.
const (
	refusalMin  = 5 * time.Second
	refusalMax  = 60 * time.Second
	maxRefusals = 4096
)

type refusal struct {
	// until: calls before it fail fast.
	until time.Time
	// delay is the backoff that set until; the next refusal doubles it.
	delay time.Duration
}

// refusals is the bounded memory of refused credentials.
type refusals struct {
	now func() time.Time
	// n mirrors len(m), so Send skips the lock and the key while nothing is
	// refused, which is the usual case.
	n  atomic.Int64
	mu sync.Mutex
	m  map[string]refusal
}

func newRefusals(now func() time.Time) *refusals {
	return &refusals{now: now, m: map[string]refusal{}}
}

func (r *refusals) active() bool { return r.n.Load() > 0 }

// check says how long key still fails fast (0: send), and whether a send
// now is the probe after a backoff.
func (r *refusals) check(key string) (wait time.Duration, probe bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[key]
	switch {
	case !ok:
		return 0, false
	case now.Before(e.until):
		return e.until.Sub(now), false
	case r.stale(e, now):
		r.del(key)
		return 0, false
	}
	return 0, true
}

// stale: the backoff ended long enough ago that a new refusal starts over.
func (r *refusals) stale(e refusal, now time.Time) bool {
	return !now.Before(e.until.Add(refusalMax))
}

// record notes a refusal of key: the first backs off refusalMin, each next
// one twice the last, up to refusalMax.
func (r *refusals) record(key string) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	delay := refusalMin
	if e, ok := r.m[key]; ok && !r.stale(e, now) {
		delay = min(2*e.delay, refusalMax)
	} else if !ok && len(r.m) >= maxRefusals {
		r.evict(now)
	}
	r.m[key] = refusal{until: now.Add(delay), delay: delay}
	r.n.Store(int64(len(r.m)))
}

func (r *refusals) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.del(key)
}

func (r *refusals) del(key string) {
	delete(r.m, key)
	r.n.Store(int64(len(r.m)))
}

// evict makes room for one entry: the stale ones go, else the one whose
// backoff ends first (the least to lose: it would be probed soonest).
func (r *refusals) evict(now time.Time) {
	first, firstKey := time.Time{}, ""
	for k, e := range r.m {
		if r.stale(e, now) {
			delete(r.m, k)
			continue
		}
		if firstKey == "" || e.until.Before(first) {
			first, firstKey = e.until, k
		}
	}
	if len(r.m) >= maxRefusals {
		delete(r.m, firstKey)
	}
}

// refusalKey names the credential caller gets from inj for its backend. The
// backend's settings are in it, so an edited backend (a new key, another
// URL) is tried at once rather than after the old settings' backoff.
func refusalKey(inj Injector, caller Caller) string {
	if k, ok := inj.(CredentialKeyer); ok {
		if key, ok := k.CredentialKey(caller); ok {
			return "k\x00" + caller.Backend.Name + "\x00" + key
		}
	}
	raw, err := json.Marshal(struct {
		URL, Method string
		Auth        map[string]any
	}{caller.Backend.URL, caller.Backend.AuthMethod, caller.Backend.AuthConfig})
	if err != nil {
		// Values that cannot come from YAML or JSON: one namespace per
		// backend name.
		return "b\x00" + caller.Backend.Name
	}
	sum := sha256.Sum256(raw)
	return "b\x00" + caller.Backend.Name + "\x00" + string(sum[:16])
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}
