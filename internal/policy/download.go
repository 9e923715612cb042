package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/plugins"
	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
)

// Bundle download guard.
//
// OPA's bundle downloader hands the response body straight to its bundle
// reader, and after a rejected bundle it retries at once and then every
// 0.1 s × 1.6^n, downloading the whole bundle again each time (it forgets
// the rejected ETag). The guard sits in the HTTP client of every service
// OPA downloads bundles from, and:
//
//   - checks each bundle download against the engine's BundleLimits before
//     OPA reads it (Content-Length, then the compressed bytes as they
//     arrive and the tar headers' sizes: see scanTarball), so that a bomb
//     is refused after its first header instead of being expanded;
//   - after a rejected download (refused here, or by OPA: signature,
//     manifest, compilation), waits before the next request, doubling the
//     wait from the poll interval after each rejected download up to
//     backoffCap, and asks with If-None-Match whether the rejected bundle
//     changed: an unchanged one is not downloaded again.
//
// It is installed as an OPA HTTP auth plugin per service that wraps the
// service's configured credentials (bearer, OAuth2, client TLS, cloud
// signing: OPA's own plugins, which still authenticate every request).

// guardPluginPrefix names the engine's auth plugin of one service.
const guardPluginPrefix = "mcpgw-bundle-guard/"

// backoffFactor bounds the backoff after rejected downloads: it doubles from
// a bundle's minimum poll delay up to this many times that delay (or the
// maximum poll delay, if longer).
const backoffFactor = 32

// guardedServices rewrites the credentials of every HTTP service in OPA's
// configuration to the guard plugin and returns each service's original
// configuration, from which the guard takes the real credentials.
func guardedServices(cfg map[string]any) (map[string][]byte, error) {
	originals := map[string][]byte{}
	guard := func(name string, svc map[string]any) error {
		if t, _ := svc["type"].(string); strings.EqualFold(t, "oci") {
			// OCI registries are read with their own client (OPA's
			// size_limit_bytes still applies there).
			return nil
		}
		raw, err := json.Marshal(svc)
		if err != nil {
			return fmt.Errorf("policy.opa.services.%s: %w", name, err)
		}
		originals[name] = raw
		svc["credentials"] = map[string]any{"plugin": guardPluginPrefix + name}
		return nil
	}
	switch services := cfg["services"].(type) {
	case nil:
	case map[string]any:
		for name, s := range services {
			if svc, ok := s.(map[string]any); ok {
				if err := guard(name, svc); err != nil {
					return nil, err
				}
			}
		}
	case []any:
		for _, s := range services {
			if svc, ok := s.(map[string]any); ok {
				name, _ := svc["name"].(string)
				if err := guard(name, svc); err != nil {
					return nil, err
				}
			}
		}
	}
	return originals, nil
}

// limitBundleFiles sets OPA's own per-file limit on every bundle source that
// does not set one.
func limitBundleFiles(cfg map[string]any, l BundleLimits) {
	bundles, _ := cfg["bundles"].(map[string]any)
	for _, b := range bundles {
		if src, ok := b.(map[string]any); ok {
			if _, set := src["size_limit_bytes"]; !set {
				src["size_limit_bytes"] = l.FileBytes
			}
		}
	}
}

// bundleGuard is the engine's guard over its bundle downloads.
type bundleGuard struct {
	limits BundleLimits
	// byRequest finds a bundle's state by service and request URL.
	byRequest map[string]*downloadState
	// byName finds it by bundle name, for OPA's status reports.
	byName map[string]*downloadState
	// files are the file:// bundle sources, which OPA reads once at start.
	files []string
}

// downloadState is what the guard remembers of one bundle's downloads.
type downloadState struct {
	name string
	// base is the bundle's minimum poll delay; backoffs double from it up
	// to limit.
	base, limit time.Duration

	mu sync.Mutex
	// rejections counts consecutive rejected downloads.
	rejections int
	// notBefore delays the next request after a rejection.
	notBefore time.Time
	// rejectedETag is the ETag of the last rejected bundle, sent in
	// If-None-Match so that an unchanged one is not downloaded again.
	rejectedETag string
	rejected     string // why it was rejected
	// last is what the latest request came to; etag the ETag of the body
	// handed to OPA.
	last attempt
	etag string
}

// attempt is what the guard made of one request.
type attempt int

const (
	attemptOther     attempt = iota // not a bundle body: an error, a 304, a 5xx
	attemptHanded                   // a bundle body handed to OPA, which decides
	attemptRefused                  // a body refused for the limits
	attemptUnchanged                // the rejected bundle, unchanged: not downloaded
)

// newBundleGuard prepares the guard for the bundles configured in m.
func newBundleGuard(m *plugins.Manager, l BundleLimits) (*bundleGuard, error) {
	g := &bundleGuard{limits: l, byRequest: map[string]*downloadState{}, byName: map[string]*downloadState{}}
	if len(m.Config.Bundles) == 0 {
		return g, nil
	}
	parsed, err := bundleplugin.NewConfigBuilder().
		WithBytes(m.Config.Bundles).
		WithServices(m.Services()).
		WithKeyConfigs(m.PublicKeys()).
		Parse()
	if err != nil {
		return nil, fmt.Errorf("policy.opa.bundles: %w", err)
	}
	if parsed == nil {
		return g, nil
	}
	for _, name := range slices.Sorted(maps.Keys(parsed.Bundles)) {
		src := parsed.Bundles[name]
		minDelay, maxDelay := int64(60), int64(120) // OPA's defaults
		if p := src.Config.Polling; p.MinDelaySeconds != nil && p.MaxDelaySeconds != nil {
			minDelay, maxDelay = *p.MinDelaySeconds, *p.MaxDelaySeconds
		}
		base := time.Duration(max(minDelay, 1)) * time.Second
		st := &downloadState{name: name, base: base, limit: max(backoffFactor*base, time.Duration(maxDelay)*time.Second)}
		g.byName[name] = st
		if strings.HasPrefix(src.Resource, "file://") {
			if u, err := url.Parse(src.Resource); err == nil {
				g.files = append(g.files, u.Path)
			}
			continue
		}
		// As OPA's REST client builds the request URL.
		u, err := url.Parse(m.Client(src.Service).Config().URL + "/" + strings.Trim(src.Resource, "/"))
		if err != nil {
			return nil, fmt.Errorf("policy.opa.bundles.%s: %w", name, err)
		}
		g.byRequest[requestKey(src.Service, u)] = st
	}
	return g, nil
}

func requestKey(service string, u *url.URL) string {
	return service + " " + u.EscapedPath() + "?" + u.RawQuery
}

// register installs the guard's auth plugin for each guarded service.
func (g *bundleGuard) register(m *plugins.Manager, originals map[string][]byte) error {
	for _, name := range slices.Sorted(maps.Keys(originals)) {
		// Only the credentials are taken from it; OPA's own client config
		// (keys, TLS, logger) reaches NewClient.
		orig, err := rest.New(originals[name], nil)
		if err != nil {
			return fmt.Errorf("policy.opa.services.%s: %w", name, err)
		}
		m.Register(guardPluginPrefix+name, &guardedService{name: name, guard: g, manager: m, original: orig.Config()})
	}
	return nil
}

// guardedService is OPA's HTTP auth plugin for one service: the service's
// own credentials, with the guard in its transport.
type guardedService struct {
	name     string
	guard    *bundleGuard
	manager  *plugins.Manager
	original *rest.Config

	mu   sync.Mutex
	auth rest.HTTPAuthPlugin
}

// NewClient builds the client the service's configured credentials would,
// and puts the guard in front of its transport.
func (s *guardedService) NewClient(c rest.Config) (*http.Client, error) {
	c.Credentials = s.original.Credentials
	auth, err := c.AuthPlugin(s.manager.AuthPlugin)
	if err != nil {
		return nil, err
	}
	hc, err := auth.NewClient(c)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.auth = auth
	s.mu.Unlock()
	guarded := *hc
	guarded.Transport = &guardTransport{service: s.name, guard: s.guard, next: cmpTransport(hc.Transport)}
	return &guarded, nil
}

// Prepare authenticates a request with the service's credentials.
func (s *guardedService) Prepare(r *http.Request) error {
	s.mu.Lock()
	auth := s.auth
	s.mu.Unlock()
	if auth == nil {
		return errors.New("bundle guard: no client yet")
	}
	return auth.Prepare(r)
}

// Start, Stop and Reconfigure make the guard an OPA plugin, which is how
// OPA finds auth plugins.
func (s *guardedService) Start(context.Context) error {
	s.manager.UpdatePluginStatus(guardPluginPrefix+s.name, &plugins.Status{State: plugins.StateOK})
	return nil
}
func (s *guardedService) Stop(context.Context)             {}
func (s *guardedService) Reconfigure(context.Context, any) {}

func cmpTransport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		return http.DefaultTransport
	}
	return rt
}

// guardTransport applies the guard to one service's bundle downloads; other
// requests (decision logs, status) pass untouched.
type guardTransport struct {
	service string
	guard   *bundleGuard
	next    http.RoundTripper
}

func (t *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := t.guard.byRequest[requestKey(t.service, req.URL)]
	if st == nil || req.Method != http.MethodGet {
		return t.next.RoundTrip(req)
	}
	if err := st.wait(req.Context()); err != nil {
		return nil, err
	}
	st.mu.Lock()
	rejectedETag := st.rejectedETag
	st.mu.Unlock()
	if rejectedETag != "" {
		// Ask whether the rejected bundle changed, as well as the active one.
		req = req.Clone(req.Context())
		tags := req.Header.Get("If-None-Match")
		if tags == "" {
			tags = rejectedETag
		} else {
			tags += ", " + rejectedETag
		}
		req.Header.Set("If-None-Match", tags)
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		st.record(attemptOther, "", nil)
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotModified && rejectedETag != "" && resp.Header.Get("ETag") == rejectedETag:
		// The server still serves the bundle that was rejected. (A 304
		// without an ETag cannot say which tag matched, and passes.)
		resp.Body.Close()
		return nil, st.record(attemptUnchanged, rejectedETag, nil)
	case resp.StatusCode == http.StatusOK:
		body, err := t.guard.admit(resp)
		resp.Body.Close()
		if err != nil {
			return nil, st.record(attemptRefused, resp.Header.Get("ETag"), err)
		}
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		resp.Header.Del("Content-Length")
		st.record(attemptHanded, resp.Header.Get("ETag"), nil)
		return resp, nil
	}
	st.record(attemptOther, "", nil)
	return resp, nil
}

// admit reads a bundle download whole, checking it against the limits as
// it arrives, and returns it for OPA to read.
func (g *bundleGuard) admit(resp *http.Response) ([]byte, error) {
	l := g.limits
	if resp.ContentLength > l.Bytes {
		return nil, overLimit("max_bundle_bytes", l.Bytes, "bundle download is %d bytes", resp.ContentLength)
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength))
	}
	download := &cappedReader{r: resp.Body, cap: l.Bytes,
		tooLarge: overLimit("max_bundle_bytes", l.Bytes, "bundle download is larger than %d bytes", l.Bytes)}
	body := io.TeeReader(download, &buf)
	err := scanTarball(body, l)
	if err == nil {
		// Whatever follows the archive, still within the cap, so that OPA
		// reads exactly what was served.
		_, err = io.Copy(io.Discard, body)
	}
	if download.exceeded {
		return nil, download.tooLarge
	}
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// wait holds a request back until the backoff after a rejection is over.
func (st *downloadState) wait(ctx context.Context) error {
	st.mu.Lock()
	d := time.Until(st.notBefore)
	st.mu.Unlock()
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// record notes what a request came to, and returns the error a refused or
// unchanged bundle is reported with.
func (st *downloadState) record(a attempt, etag string, refused error) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.last, st.etag = a, etag
	switch a {
	case attemptRefused:
		st.rejectLocked(etag, refused.Error())
		return refused
	case attemptUnchanged:
		// Asking again costs the server nothing: ask once per poll.
		st.notBefore = time.Now().Add(jitter(st.base))
		return &unchangedError{etag: etag, reason: st.rejected}
	}
	return nil
}

func (st *downloadState) rejectLocked(etag, reason string) {
	st.rejections++
	st.notBefore = time.Now().Add(jitter(backoff(st.base, st.limit, st.rejections)))
	st.rejectedETag, st.rejected = etag, reason
}

// reported takes OPA's verdict on the latest request and says whether it is
// news: a rejected bundle asked about again (unchanged) is not.
func (st *downloadState) reported(failed bool, reason string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	last := st.last
	st.last = attemptOther
	switch {
	case last == attemptUnchanged:
		return false
	case last == attemptHanded && failed:
		st.rejectLocked(st.etag, reason)
	case last == attemptHanded:
		// A good bundle: the backoff is over.
		st.rejections, st.notBefore, st.rejectedETag, st.rejected = 0, time.Time{}, "", ""
	}
	return true
}

// unchangedError reports a bundle that is still the one rejected.
type unchangedError struct{ etag, reason string }

func (e *unchangedError) Error() string {
	return fmt.Sprintf("bundle %s is unchanged since it was rejected (%s); not downloaded again", e.etag, e.reason)
}

// backoff is base doubled for each rejection after the first, up to limit.
func backoff(base, limit time.Duration, rejections int) time.Duration {
	d := base
	for i := 1; i < rejections && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// jitter spreads d by ±10%, so that replicas do not retry in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// report passes OPA's status of one bundle to its download state and says
// whether it is a new rejection to record.
func (g *bundleGuard) report(s bundleplugin.Status, failed bool) bool {
	if g == nil {
		return true
	}
	st := g.byName[s.Name]
	if st == nil {
		return true
	}
	return st.reported(failed, describeBundleError(s))
}
