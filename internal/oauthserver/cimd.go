package oauthserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"github.com/mcpgw/mcpgw/internal/store"
)

// Bounds of a Client ID Metadata Document fetch: the document names a few
// URLs and strings; a slow or huge answer is an attack on the gateway.
const (
	maxCIMDBytes   = 16 << 10
	cimdTimeout    = 5 * time.Second
	minCIMDCache   = time.Minute
	maxCIMDCache   = 24 * time.Hour
	cimdDialPrefix = "client metadata document"
)

// cimdFetcher fetches documents through a dialer that refuses, at connect
// time (after DNS, so a name re-bound to an internal address is caught),
// every address that is not public.
type cimdFetcher struct {
	cfg   config.OAuthCIMD
	httpc *http.Client
}

func newCIMDFetcher(cfg config.OAuthCIMD, base *http.Transport) *cimdFetcher {
	var t *http.Transport
	if base != nil {
		t = base.Clone()
	} else {
		t = http.DefaultTransport.(*http.Transport).Clone()
	}
	t.Proxy = nil // a proxy would dial for us, past the address check
	dialer := &net.Dialer{Timeout: cimdTimeout, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%s: unexpected address %q", cimdDialPrefix, address)
		}
		if !cfg.AllowPrivateAddresses && !publicAddr(ap.Addr()) {
			return fmt.Errorf("%s: %s is not a public address (oauth.client_metadata_documents.allow_private_addresses is off)", cimdDialPrefix, ap.Addr())
		}
		return nil
	}}
	t.DialContext = dialer.DialContext
	t.ResponseHeaderTimeout = cimdTimeout
	return &cimdFetcher{cfg: cfg, httpc: &http.Client{
		Transport: t,
		Timeout:   cimdTimeout,
		// A redirect would make the document's URL differ from client_id.
		CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("redirects are not followed") },
	}}
}

// publicAddr: not loopback, private (RFC 1918, ULA), link-local,
// unspecified, multicast, CGNAT (100.64/10) or an IPv4-mapped form of one.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range []string{"100.64.0.0/10", "0.0.0.0/8", "192.0.0.0/24", "198.18.0.0/15", "64:ff9b::/96"} {
		if netip.MustParsePrefix(p).Contains(a) {
			return false
		}
	}
	return true
}

// checkCIMDURL: https, a host, a path, nothing else (the draft's rules).
func checkCIMDURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("a client_id URL must be https with a host")
	}
	if u.Path == "" || u.Path == "/" {
		return nil, errors.New("a client_id URL must have a path")
	}
	if u.User != nil || u.Fragment != "" || strings.Contains(s, "#") {
		return nil, errors.New("a client_id URL must not have credentials or a fragment")
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, errors.New("a client_id URL must not have dot segments")
		}
	}
	return u, nil
}

// cimdClient returns the client a document describes, from the store while
// its cached copy is fresh, else fetched again.
func (s *Server) cimdClient(ctx context.Context, id string) (store.OAuthClient, error) {
	if _, err := checkCIMDURL(id); err != nil {
		return store.OAuthClient{}, err
	}
	now := s.now()
	if cl, err := s.st.GetOAuthClient(ctx, id, now); err == nil && cl.CIMD && now.Before(cl.ExpiresAt) {
		return cl, nil
	}
	m, ttl, err := s.cimd.fetch(ctx, id)
	if err != nil {
		return store.OAuthClient{}, fmt.Errorf("client metadata document %s: %w", secrets.Foreign(id, 200), err)
	}
	if err := m.check(); err != nil {
		return store.OAuthClient{}, fmt.Errorf("client metadata document %s: %w", secrets.Foreign(id, 200), err)
	}
	agent, err := s.agentFor(m, "")
	if err != nil {
		return store.OAuthClient{}, fmt.Errorf("client metadata document %s: %w", secrets.Foreign(id, 200), err)
	}
	doc, _ := json.Marshal(m)
	cl := store.OAuthClient{ID: id, Name: m.ClientName, SoftwareID: m.SoftwareID, SoftwareVersion: m.SoftwareVersion,
		RedirectURIs: m.RedirectURIs, Agent: agent, Metadata: doc, CIMD: true, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.st.PutOAuthClient(ctx, cl); err != nil {
		return store.OAuthClient{}, fmt.Errorf("cache client metadata document: %w", err)
	}
	return cl, nil
}

func (f *cimdFetcher) fetch(ctx context.Context, id string) (clientMetadata, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return clientMetadata{}, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.httpc.Do(req)
	if err != nil {
		return clientMetadata{}, 0, fmt.Errorf("fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return clientMetadata{}, 0, fmt.Errorf("fetch: HTTP %d", resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return clientMetadata{}, 0, fmt.Errorf("fetch: Content-Type %q, want application/json", secrets.Foreign(mt, 60))
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxCIMDBytes+1))
	if err != nil {
		return clientMetadata{}, 0, fmt.Errorf("fetch: read: %w", err)
	}
	if len(raw) > maxCIMDBytes {
		return clientMetadata{}, 0, errors.New("document larger than 16 KiB")
	}
	var m clientMetadata
	if err := json.Unmarshal(raw, &m); err != nil {
		return clientMetadata{}, 0, errors.New("document is not a JSON object of client metadata")
	}
	if m.ClientID != id {
		return clientMetadata{}, 0, fmt.Errorf("document names client_id %q, not its own URL", secrets.Foreign(m.ClientID, 200))
	}
	return m, f.ttl(resp.Header.Get("Cache-Control")), nil
}

// ttl honours max-age within bounds; no-store still caches for the minimum,
// or every authorize would fetch.
func (f *cimdFetcher) ttl(cacheControl string) time.Duration {
	ttl := f.cfg.CacheTTL
	for _, d := range strings.Split(cacheControl, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(strings.ToLower(d)), "=")
		if k == "max-age" {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				ttl = time.Duration(n) * time.Second
			}
		}
	}
	return min(max(ttl, minCIMDCache), maxCIMDCache)
}
