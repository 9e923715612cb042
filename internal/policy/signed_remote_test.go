package policy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/policy/policytest"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// bundleServer serves one bundle with an ETag, as nginx or any static server
// does (If-None-Match may list several tags; a 304 names the current one),
// and counts what it answered.
type bundleServer struct {
	*httptest.Server
	mode        serverMode
	mu          sync.Mutex
	body        []byte
	etag        string
	served      []time.Time  // when each 200 since the last set began
	downloads   atomic.Int64 // 200 answers
	notModified atomic.Int64 // 304 answers
}

// serverMode says how a bundleServer departs from a well-behaved one.
type serverMode struct {
	// noETag: no ETag, every request answered 200 with the whole body.
	noETag bool
	// chunked: no Content-Length, so that the size is known only by reading.
	chunked bool
	// bearer, when set, is the token every request must carry.
	bearer string
}

const bundlePath = "/bundles/mcpgw.tar.gz"

func newBundleServer(t *testing.T, body []byte) *bundleServer {
	return newBundleServerWith(t, body, serverMode{})
}

func newBundleServerWith(t *testing.T, body []byte, mode serverMode) *bundleServer {
	s := &bundleServer{mode: mode}
	s.set(body)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != bundlePath {
			http.NotFound(w, r)
			return
		}
		if mode.bearer != "" && r.Header.Get("Authorization") != "Bearer "+mode.bearer {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		s.mu.Lock()
		body, etag := s.body, s.etag
		unchanged := !mode.noETag && slices.ContainsFunc(strings.Split(r.Header.Get("If-None-Match"), ","),
			func(tag string) bool { return strings.TrimSpace(tag) == etag })
		if unchanged {
			s.notModified.Add(1)
		} else {
			s.downloads.Add(1)
			s.served = append(s.served, time.Now())
		}
		s.mu.Unlock()
		if !mode.noETag {
			w.Header().Set("ETag", etag)
		}
		if unchanged {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		if !mode.chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		// A client that stops reading early (a refused bundle) is fine.
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// set serves body from now on and returns how many requests came before.
func (s *bundleServer) set(body []byte) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.etag = body, fmt.Sprintf(`"%x"`, sha256.Sum256(body))
	s.served = nil
	return s.downloads.Load() + s.notModified.Load()
}

// requests counts every request answered.
func (s *bundleServer) requests() int64 { return s.downloads.Load() + s.notModified.Load() }

// servedSinceSet returns when each 200 since the last set began.
func (s *bundleServer) servedSinceSet() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.served)
}

func (s *bundleServer) bundleURL() string { return s.URL + bundlePath }

// A bundle server is polled with its ETag: an unchanged bundle is not
// downloaded again, a new revision is activated within the poll interval, and
// bad revisions (unsigned, unnamed) are rejected while the last good one
// keeps serving.
func TestBundleServerPollsWithETag(t *testing.T) {
	t.Parallel()
	signingKey, publicKey := policytest.KeyPair(t)
	srv := newBundleServer(t, versioned("r1", "A", signingKey).bytes(t))
	var seen activations
	e, _ := newEngine(t, Options{
		Source: srv.bundleURL(), VerificationKey: publicKey,
		PollInterval: time.Second, PersistDir: t.TempDir(), OnActivate: seen.record,
	})
	if err := e.Ready(); err != nil || e.Revision() != "r1" {
		t.Fatalf("after New: revision %q, ready %v", e.Revision(), err)
	}
	if d := e.Decide(context.Background(), versionCall()); !decidedBy(d, map[string]string{"r1": "A"}) {
		t.Fatalf("decision: %+v", d)
	}

	// Polls every 1-2 s; the same bundle comes back 304.
	testutil.Eventually(t, 10*time.Second, "two 304 polls", func() bool { return srv.notModified.Load() >= 2 })
	if n := srv.downloads.Load(); n != 1 {
		t.Fatalf("unchanged bundle downloaded %d times", n)
	}

	// A new revision is taken at the very next poll: one request after the
	// change, and it is a download.
	before := srv.set(versioned("r2", "B", signingKey).bytes(t))
	testutil.Eventually(t, 10*time.Second, "r2 activated", func() bool { return e.Revision() == "r2" })
	if polls := srv.downloads.Load() + srv.notModified.Load() - before; polls != 1 || srv.downloads.Load() != 2 {
		t.Fatalf("r2 activated after %d polls (%d downloads in all); want the next poll to download it", polls, srv.downloads.Load())
	}
	if d := e.Decide(context.Background(), versionCall()); !decidedBy(d, map[string]string{"r2": "B"}) {
		t.Fatalf("decision after r2: %+v", d)
	}
	testutil.Eventually(t, 2*time.Second, "r2 announced", func() bool { return seen.seen("r2") })

	for _, bad := range []struct {
		name string
		spec bundleSpec
		want string
	}{
		{"unsigned", versioned("r3", "C", ""), "bundle missing .signatures.json"},
		{"without revision", versioned("", "C", signingKey), ".manifest has no revision"},
	} {
		before := e.Status().LastRejectedAt
		srv.set(bad.spec.bytes(t))
		testutil.Eventually(t, 10*time.Second, bad.name+" bundle rejected", func() bool { return e.Status().LastRejectedAt.After(before) })
		st := e.Status()
		if !strings.Contains(st.LastRejected, bad.want) || st.Revision != "r2" || !st.Ready {
			t.Fatalf("%s: status %+v, want r2 serving and a rejection mentioning %q", bad.name, st, bad.want)
		}
		if d := e.Decide(context.Background(), versionCall()); !decidedBy(d, map[string]string{"r2": "B"}) {
			t.Fatalf("%s: decision: %+v", bad.name, d)
		}
	}
}

// The last good bundle persists on disk: a gateway that starts while the
// bundle server is down serves it. Without one it denies and says why.
func TestPersistedBundleServesWhileServerIsDown(t *testing.T) {
	t.Parallel()
	signingKey, publicKey := policytest.KeyPair(t)
	persist := t.TempDir()
	srv := newBundleServer(t, versioned("r1", "A", signingKey).bytes(t))
	first, err := New(context.Background(), Options{
		Source: srv.bundleURL(), VerificationKey: publicKey, PersistDir: persist,
		Logger: quietLogger(), DecisionLog: func(context.Context, Record) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	if first.Revision() != "r1" {
		t.Fatalf("first start: revision %q", first.Revision())
	}
	stopEngine(t, first)
	srv.Close()

	// A port nothing listens on: connection refused at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + bundlePath
	ln.Close()

	restarted, _ := newEngine(t, Options{Source: down, VerificationKey: publicKey, PersistDir: persist})
	if err := restarted.Ready(); err != nil || restarted.Revision() != "r1" {
		t.Fatalf("restart with the server down: revision %q, ready %v", restarted.Revision(), err)
	}
	if d := restarted.Decide(context.Background(), versionCall()); !decidedBy(d, map[string]string{"r1": "A"}) {
		t.Fatalf("decision from the persisted bundle: %+v", d)
	}
	if st := restarted.Status(); !strings.Contains(st.LastRejected, "connection refused") {
		t.Fatalf("status does not say the server is down: %+v", st)
	}

	fresh, _ := newEngine(t, Options{Source: down, VerificationKey: publicKey, PersistDir: t.TempDir()})
	err = fresh.Ready()
	if err == nil || !strings.Contains(err.Error(), "no verified policy bundle") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Ready without any bundle: %v", err)
	}
	// The denial says why without naming the bundle server to the caller.
	d := fresh.Decide(context.Background(), versionCall())
	if reasons := strings.Join(d.Reasons, " "); d.Allow || !strings.Contains(reasons, "no verified policy bundle") || strings.Contains(reasons, "127.0.0.1") {
		t.Fatalf("decision without any bundle: %+v", d)
	}
	if names, err := fresh.Visible(context.Background(), lister(nil, readScopes, "employees"), ListTools); err == nil || len(names) > 0 {
		t.Fatalf("visibility without any bundle: %v, %v", names, err)
	}
}

// OPA's own bundles configuration, as an OPA user writes it, works as is.
func TestOPABundlesConfiguration(t *testing.T) {
	t.Parallel()
	signingKey, publicKey := policytest.KeyPair(t)
	pem, err := readKey(publicKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := newBundleServer(t, versioned("2026.03.1", "A", signingKey).bytes(t))
	e, _ := newEngine(t, Options{OPAConfig: map[string]any{
		"services": []any{map[string]any{"name": "acme", "url": srv.URL + "/bundles"}},
		"keys":     map[string]any{"ci": map[string]any{"key": pem, "algorithm": "RS256"}},
		"bundles": map[string]any{"gateway": map[string]any{
			"service": "acme", "resource": "mcpgw.tar.gz", "persist": true,
			"signing": map[string]any{"keyid": "ci"},
		}},
		"persistence_directory": t.TempDir(),
	}})
	if err := e.Ready(); err != nil || e.Revision() != "2026.03.1" {
		t.Fatalf("revision %q, ready %v", e.Revision(), err)
	}
	if st := e.Status(); st.Source != "policy.opa.bundles" || !st.SignatureVerified {
		t.Fatalf("status %+v", st)
	}
	if info := e.bundleInfo(e.Revision()); info["gateway"].Revision != "2026.03.1" {
		t.Fatalf("decision-log bundle info %v", info)
	}
}
