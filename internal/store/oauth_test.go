package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
)

// The OAuth authorization server's state on every database: round trips,
// expiry, single use under concurrency, refresh token reuse, cascades and
// purging.
func TestOAuth(t *testing.T) {
	runOnEveryDatabase(t, []conformanceCase{
		{name: "clients", run: testOAuthClients},
		{name: "pending requests", run: testOAuthPending},
		{name: "codes", run: testOAuthCodes},
		{name: "grants", run: testOAuthGrants},
		{name: "refresh rotation and reuse", run: testOAuthRotation},
		{name: "concurrent single use", run: testOAuthConcurrent},
		{name: "consents", run: testOAuthConsents},
		{name: "delete client cascades", run: testOAuthDeleteClient},
		{name: "purge", run: testOAuthPurge},
		{name: "invalid values refused", run: testOAuthInvalid},
		{name: "audit records of kind oauth", run: testOAuthAudit},
		{name: "one replica redeems what another issued", sharedOnly: true, run: testOAuthReplicas},
		{name: "migration from 0004 keeps the audit trail", sharedOnly: true, run: testOAuthMigration},
	})
}

// oauthT0 is the fixtures' clock; times are whole microseconds in UTC, as
// the store keeps them, so round trips compare with reflect.DeepEqual.
var oauthT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return oauthT0.Add(d) }

func testOAuthGrant(id, client string) OAuthGrant {
	return OAuthGrant{
		ID: id, ClientID: client, Agent: "cursor", Subject: "alice", Issuer: "https://idp.example.com",
		Groups: []string{"eng", "hr"}, Scopes: []string{"mcp:read", "mcp:write"}, Resource: "https://gw.example.com/employees",
		Claims: []byte(`{"name": "Alice", "email":"alice@example.com"}`), Upstream: []byte{0, 1, 2, 0xfe, 0xff},
		CreatedAt: oauthT0, UpdatedAt: oauthT0, ExpiresAt: at(720 * time.Hour),
	}
}

func mustPutGrant(t *testing.T, s Store, g OAuthGrant, refresh string) {
	t.Helper()
	if err := s.PutOAuthGrant(context.Background(), g, refresh); err != nil {
		t.Fatalf("put grant %s: %v", g.ID, err)
	}
}

func mustPutCode(t *testing.T, s Store, hash, grant, client string, expires time.Time) OAuthCode {
	t.Helper()
	c := OAuthCode{Hash: hash, GrantID: grant, ClientID: client, RedirectURI: "http://127.0.0.1:7777/cb",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Resource: "https://gw.example.com/employees", ExpiresAt: expires}
	if err := s.PutOAuthCode(context.Background(), c); err != nil {
		t.Fatalf("put code %s: %v", hash, err)
	}
	return c
}

func mustGetGrant(t *testing.T, s Store, id string) OAuthGrant {
	t.Helper()
	g, err := s.GetOAuthGrant(context.Background(), id)
	if err != nil {
		t.Fatalf("get grant %s: %v", id, err)
	}
	return g
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want %v", what, err, target)
	}
}

func testOAuthClients(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	reg := OAuthClient{
		ID: "c-4f2a", Name: "Cursor", SoftwareID: "cursor", SoftwareVersion: "1.2.3",
		RedirectURIs: []string{"http://127.0.0.1:5555/callback", "cursor://anysphere.cursor-mcp/oauth/callback"},
		Agent:        "cursor",
		// Kept as received, spacing and key order included.
		Metadata:  []byte(`{"redirect_uris": ["http://127.0.0.1:5555/callback"],  "client_name":"Cursor"}`),
		CreatedAt: oauthT0,
	}
	cimd := OAuthClient{ID: "https://app.example.com/oauth/client.json", Name: "App", CIMD: true,
		RedirectURIs: []string{"https://app.example.com/cb"}, Agent: "claude", CreatedAt: at(time.Minute), ExpiresAt: at(time.Hour)}
	for _, c := range []OAuthClient{reg, cimd} {
		if err := s.PutOAuthClient(ctx, c); err != nil {
			t.Fatalf("put %s: %v", c.ID, err)
		}
	}
	for _, tc := range []struct {
		name string
		c    OAuthClient
		now  time.Time
		ok   bool
	}{
		{"registered", reg, oauthT0, true},
		{"registered never expires", reg, at(10 * 365 * 24 * time.Hour), true},
		{"cimd before its expiry", cimd, at(time.Hour - time.Microsecond), true},
		{"cimd at its expiry", cimd, at(time.Hour), false},
		{"cimd after its expiry", cimd, at(2 * time.Hour), false},
	} {
		got, err := s.GetOAuthClient(ctx, tc.c.ID, tc.now)
		switch {
		case !tc.ok:
			wantErr(t, tc.name, err, ErrNotFound)
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !reflect.DeepEqual(got, tc.c):
			t.Errorf("%s:\n got  %+v\n want %+v", tc.name, got, tc.c)
		}
	}
	_, err := s.GetOAuthClient(ctx, "c-none", oauthT0)
	wantErr(t, "unknown client", err, ErrNotFound)

	// Replacing keeps one row; expired clients are listed, newest first.
	reg.Name, reg.RedirectURIs, reg.Metadata = "Cursor 2", nil, nil
	if err := s.PutOAuthClient(ctx, reg); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListOAuthClients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || !reflect.DeepEqual(list[0], cimd) || !reflect.DeepEqual(list[1], reg) {
		t.Errorf("list = %+v, want [cimd, replaced reg]", list)
	}

	// A zero CreatedAt is now.
	if err := s.PutOAuthClient(ctx, OAuthClient{ID: "c-now"}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.GetOAuthClient(ctx, "c-now", time.Now()); err != nil || time.Since(c.CreatedAt) > time.Minute || c.CreatedAt.After(time.Now()) {
		t.Errorf("client without CreatedAt = %+v, %v; want created now", c, err)
	}
}

func testOAuthPending(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	p := OAuthPending{ID: "st-1", ClientID: "c1", RedirectURI: "http://127.0.0.1:5555/cb", State: "client-state",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Resource: "https://gw.example.com/employees",
		Scope: "mcp:read mcp:write", ConsentID: "k1", Secret: []byte{0, 0xff, 1}, ExpiresAt: at(10 * time.Minute)}
	bare := OAuthPending{ID: "st-2", ClientID: "c1", ExpiresAt: at(10 * time.Minute)}
	for _, x := range []OAuthPending{p, bare} {
		if err := s.PutOAuthPending(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutOAuthPending(ctx, p); err == nil {
		t.Error("a second request with the same id was stored")
	}
	for _, want := range []OAuthPending{p, bare} {
		got, err := s.TakeOAuthPending(ctx, want.ID, oauthT0)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("take %s:\n got  %+v, %v\n want %+v", want.ID, got, err, want)
		}
		_, err = s.TakeOAuthPending(ctx, want.ID, oauthT0)
		wantErr(t, "second take of "+want.ID, err, ErrNotFound)
	}

	// Expired: refused, and gone all the same.
	p.ID, p.ExpiresAt = "st-3", at(time.Minute)
	if err := s.PutOAuthPending(ctx, p); err != nil {
		t.Fatal(err)
	}
	_, err := s.TakeOAuthPending(ctx, "st-3", at(time.Minute))
	wantErr(t, "expired take", err, ErrNotFound)
	if n := countRows(t, s, "oauth_pending"); n != 0 {
		t.Errorf("%d pending requests left, want 0", n)
	}
}

func testOAuthCodes(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	mustPutGrant(t, s, testOAuthGrant("g1", "c1"), "")
	code := mustPutCode(t, s, "h-1", "g1", "c1", at(time.Minute))
	if err := s.PutOAuthCode(ctx, code); err == nil {
		t.Error("a second code with the same hash was stored")
	}
	got, err := s.RedeemOAuthCode(ctx, "h-1", oauthT0)
	if err != nil || !reflect.DeepEqual(got, code) {
		t.Fatalf("redeem:\n got  %+v, %v\n want %+v", got, err, code)
	}
	// A replay returns the code, so that the caller knows which grant to
	// revoke, even once the code has expired.
	for _, now := range []time.Time{at(time.Second), at(time.Hour - time.Second)} {
		got, err = s.RedeemOAuthCode(ctx, "h-1", now)
		wantErr(t, "second redemption", err, ErrReplayed)
		if !reflect.DeepEqual(got, code) {
			t.Errorf("second redemption returned %+v, want the code", got)
		}
	}

	mustPutCode(t, s, "h-exp", "g1", "c1", at(time.Minute))
	mustPutCode(t, s, "h-orphan", "g-none", "c1", at(time.Minute))
	mustPutCode(t, s, "h-unused", "g1", "c1", at(time.Minute))
	for _, tc := range []struct {
		name, hash string
		now        time.Time
	}{
		{"unknown", "h-none", oauthT0},
		{"at its expiry", "h-exp", at(time.Minute)},
		{"after its expiry", "h-exp", at(time.Hour)},
		{"of no stored grant", "h-orphan", oauthT0},
	} {
		got, err := s.RedeemOAuthCode(ctx, tc.hash, tc.now)
		wantErr(t, tc.name, err, ErrNotFound)
		if !reflect.DeepEqual(got, OAuthCode{}) {
			t.Errorf("%s: returned %+v", tc.name, got)
		}
	}
	// Revoking the grant leaves no usable code; the used one stays, to
	// recognize its replay.
	if err := s.RevokeOAuthGrant(ctx, "g1", "logout", at(time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = s.RedeemOAuthCode(ctx, "h-unused", at(2*time.Second))
	wantErr(t, "code of a revoked grant", err, ErrNotFound)
	_, err = s.RedeemOAuthCode(ctx, "h-1", at(2*time.Second))
	wantErr(t, "used code of a revoked grant", err, ErrReplayed)
}

func testOAuthGrants(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	g := testOAuthGrant("g1", "c1")
	mustPutGrant(t, s, g, "r-1")
	if got := mustGetGrant(t, s, "g1"); !reflect.DeepEqual(got, g) {
		t.Errorf("get:\n got  %+v\n want %+v", got, g)
	}
	if got, err := s.GrantByRefresh(ctx, "r-1"); err != nil || !reflect.DeepEqual(got, g) {
		t.Errorf("by refresh: %+v, %v", got, err)
	}
	_, err := s.GrantByRefresh(ctx, "r-none")
	wantErr(t, "unknown refresh token", err, ErrNotFound)
	_, err = s.GetOAuthGrant(ctx, "g-none")
	wantErr(t, "unknown grant", err, ErrNotFound)
	if !g.Active(oauthT0) || g.Active(g.ExpiresAt) {
		t.Error("Active does not follow ExpiresAt")
	}

	// The id and the refresh hash must be new; a failed put stores nothing.
	if err := s.PutOAuthGrant(ctx, g, "r-2"); err == nil {
		t.Error("a second grant with the same id was stored")
	}
	if err := s.PutOAuthGrant(ctx, testOAuthGrant("g-dup", "c1"), "r-1"); err == nil {
		t.Error("a grant with another grant's refresh hash was stored")
	}
	if _, err := s.GetOAuthGrant(ctx, "g-dup"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the grant of a failed put: %v, want ErrNotFound", err)
	}

	// Lists: newest first, filtered, without the upstream tokens.
	bare := OAuthGrant{ID: "g0", ClientID: "c2", Subject: "bob", CreatedAt: at(-time.Hour), ExpiresAt: at(time.Hour)}
	mustPutGrant(t, s, bare, "")
	bare.UpdatedAt = bare.CreatedAt
	g2 := testOAuthGrant("g2", "c2")
	g2.CreatedAt, g2.UpdatedAt = at(time.Hour), at(time.Hour)
	mustPutGrant(t, s, g2, "r-g2")
	listed := func(g OAuthGrant) OAuthGrant { g.Upstream = nil; return g }
	for _, tc := range []struct {
		name string
		f    OAuthGrantFilter
		want []OAuthGrant
	}{
		{"all", OAuthGrantFilter{}, []OAuthGrant{listed(g2), listed(g), bare}},
		{"client", OAuthGrantFilter{ClientID: "c2"}, []OAuthGrant{listed(g2), bare}},
		{"subject", OAuthGrantFilter{Subject: "alice"}, []OAuthGrant{listed(g2), listed(g)}},
		{"both", OAuthGrantFilter{ClientID: "c2", Subject: "bob"}, []OAuthGrant{bare}},
		{"none", OAuthGrantFilter{Subject: "carol"}, nil},
	} {
		got, err := s.ListOAuthGrants(ctx, tc.f)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("list %s:\n got  %+v, %v\n want %+v", tc.name, got, err, tc.want)
		}
	}

	// Revoking is idempotent: the first revocation stays.
	if err := s.RevokeOAuthGrant(ctx, "g1", "logout", at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeOAuthGrant(ctx, "g1", "again", at(2*time.Minute)); err != nil {
		t.Errorf("second revocation: %v", err)
	}
	got := mustGetGrant(t, s, "g1")
	if !got.RevokedAt.Equal(at(time.Minute)) || got.RevokedReason != "logout" || got.Active(oauthT0) {
		t.Errorf("revoked grant: at %v reason %q", got.RevokedAt, got.RevokedReason)
	}
	if got, err := s.GrantByRefresh(ctx, "r-1"); err != nil || got.RevokedAt.IsZero() {
		t.Errorf("a revoked grant by its refresh token: %+v, %v", got, err)
	}
	wantErr(t, "revoke unknown", s.RevokeOAuthGrant(ctx, "g-none", "x", oauthT0), ErrNotFound)
}

func testOAuthRotation(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	g := testOAuthGrant("g1", "c1")
	mustPutGrant(t, s, g, "r-1")

	// The update may change what the IdP's refresh changed; the grant's
	// identity is not the update's to change.
	now := at(time.Hour)
	got, err := s.RotateOAuthRefresh(ctx, "r-1", "r-2", now, func(g *OAuthGrant) error {
		g.Groups, g.Claims, g.Upstream, g.ExpiresAt = []string{"eng"}, []byte(`{"name":"Alice B."}`), []byte{9}, now.Add(720*time.Hour)
		g.Subject, g.ClientID = "mallory", "c-evil"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := g
	want.Groups, want.Claims, want.Upstream, want.ExpiresAt, want.UpdatedAt = []string{"eng"}, []byte(`{"name":"Alice B."}`), []byte{9}, now.Add(720*time.Hour), now
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rotated:\n got  %+v\n want %+v", got, want)
	}
	if stored := mustGetGrant(t, s, "g1"); !reflect.DeepEqual(stored, want) {
		t.Errorf("stored after rotation:\n got  %+v\n want %+v", stored, want)
	}
	for _, h := range []string{"r-1", "r-2"} {
		if g, err := s.GrantByRefresh(ctx, h); err != nil || g.ID != "g1" {
			t.Errorf("grant by %s = %q, %v", h, g.ID, err)
		}
	}

	// An update's error aborts the rotation: the token stays current.
	boom := errors.New("upstream refresh failed")
	_, err = s.RotateOAuthRefresh(ctx, "r-2", "r-3", at(2*time.Hour), func(*OAuthGrant) error { return boom })
	wantErr(t, "failed update", err, boom)
	// A nil update rotates only.
	if _, err := s.RotateOAuthRefresh(ctx, "r-2", "r-3", at(2*time.Hour), nil); err != nil {
		t.Fatalf("rotation after a failed one: %v", err)
	}

	for _, tc := range []struct {
		name, old, new string
	}{
		{"unknown token", "r-none", "r-x"},
		{"new hash taken", "r-3", "r-1"},
		{"new hash empty", "r-3", ""},
		{"new hash is the old", "r-3", "r-3"},
	} {
		if _, err := s.RotateOAuthRefresh(ctx, tc.old, tc.new, at(2*time.Hour), nil); err == nil || errors.Is(err, ErrReplayed) {
			t.Errorf("%s: err = %v, want a refusal that is no replay", tc.name, err)
		}
	}
	if !mustGetGrant(t, s, "g1").RevokedAt.IsZero() {
		t.Fatal("a refused rotation revoked the grant")
	}

	// Reuse of a former token revokes the family: the current token is
	// dead too.
	got, err = s.RotateOAuthRefresh(ctx, "r-1", "r-9", at(3*time.Hour), nil)
	wantErr(t, "reuse", err, ErrReplayed)
	if got.ID != "g1" || got.RevokedReason != RevokedRefreshReuse || !got.RevokedAt.Equal(at(3*time.Hour)) {
		t.Errorf("reuse returned %+v, want g1 revoked for reuse at %v", got, at(3*time.Hour))
	}
	_, err = s.RotateOAuthRefresh(ctx, "r-3", "r-4", at(3*time.Hour), nil)
	wantErr(t, "rotation after reuse", err, ErrNotFound)
	// A second reuse is still a replay and keeps the first revocation.
	_, err = s.RotateOAuthRefresh(ctx, "r-2", "r-9", at(4*time.Hour), nil)
	wantErr(t, "second reuse", err, ErrReplayed)
	if g := mustGetGrant(t, s, "g1"); !g.RevokedAt.Equal(at(3 * time.Hour)) {
		t.Errorf("second reuse moved the revocation to %v", g.RevokedAt)
	}

	// Expired and revoked grants do not rotate.
	short := testOAuthGrant("g-short", "c1")
	short.ExpiresAt = at(time.Hour)
	mustPutGrant(t, s, short, "rs-1")
	_, err = s.RotateOAuthRefresh(ctx, "rs-1", "rs-2", at(time.Hour), nil)
	wantErr(t, "expired grant", err, ErrNotFound)
	if _, err := s.RotateOAuthRefresh(ctx, "rs-1", "rs-2", at(time.Hour-time.Microsecond), nil); err != nil {
		t.Errorf("rotation just before expiry: %v", err)
	}
	mustPutGrant(t, s, testOAuthGrant("g-rev", "c1"), "rv-1")
	if err := s.RevokeOAuthGrant(ctx, "g-rev", "logout", oauthT0); err != nil {
		t.Fatal(err)
	}
	_, err = s.RotateOAuthRefresh(ctx, "rv-1", "rv-2", at(time.Minute), nil)
	wantErr(t, "revoked grant", err, ErrNotFound)
}

// testOAuthConcurrent races 8 goroutines, over two handles (two
// connection pools, as two replicas) where the database is shared, at
// each single-use operation: exactly one wins.
func testOAuthConcurrent(t *testing.T, b dbUnderTest) {
	dsn := b.newDSN(t)
	handles := []Store{openTest(t, dsn)}
	if b.shared {
		handles = append(handles, openTest(t, dsn))
	}
	s := handles[0]
	ctx := context.Background()
	const n = 8
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, round int)
		op      func(s Store, round, i int) error
		loseErr error
		check   func(t *testing.T, round int)
	}{
		{
			name: "take",
			setup: func(t *testing.T, round int) {
				p := OAuthPending{ID: fmt.Sprint("race-", round), ClientID: "c1", ExpiresAt: at(time.Hour)}
				if err := s.PutOAuthPending(ctx, p); err != nil {
					t.Fatal(err)
				}
			},
			op: func(s Store, round, _ int) error {
				_, err := s.TakeOAuthPending(ctx, fmt.Sprint("race-", round), oauthT0)
				return err
			},
			loseErr: ErrNotFound,
		},
		{
			name: "redeem",
			setup: func(t *testing.T, round int) {
				mustPutGrant(t, s, testOAuthGrant(fmt.Sprint("gc-", round), "c1"), "")
				mustPutCode(t, s, fmt.Sprint("code-", round), fmt.Sprint("gc-", round), "c1", at(time.Minute))
			},
			op: func(s Store, round, _ int) error {
				_, err := s.RedeemOAuthCode(ctx, fmt.Sprint("code-", round), oauthT0)
				return err
			},
			loseErr: ErrReplayed,
		},
		{
			name: "rotate",
			setup: func(t *testing.T, round int) {
				mustPutGrant(t, s, testOAuthGrant(fmt.Sprint("gr-", round), "c1"), fmt.Sprint("rt-", round))
			},
			op: func(s Store, round, i int) error {
				_, err := s.RotateOAuthRefresh(ctx, fmt.Sprint("rt-", round), fmt.Sprintf("rt-%d-%d", round, i), at(time.Minute), nil)
				return err
			},
			loseErr: ErrReplayed,
			check: func(t *testing.T, round int) {
				// The losers' reuse revoked the family, the winner's
				// new token with it.
				g := mustGetGrant(t, s, fmt.Sprint("gr-", round))
				if g.RevokedReason != RevokedRefreshReuse {
					t.Errorf("grant after a raced rotation: revoked %v for %q, want reuse", g.RevokedAt, g.RevokedReason)
				}
				if n := countRows(t, s, "oauth_refresh_tokens WHERE grant_id = '"+g.ID+"'"); n != 2 {
					t.Errorf("%d refresh tokens, want the old and one new", n)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 3 {
				tc.setup(t, round)
				var (
					wg    sync.WaitGroup
					start = make(chan struct{})
					errs  = make([]error, n)
				)
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						errs[i] = tc.op(handles[i%len(handles)], round, i)
					}()
				}
				close(start)
				wg.Wait()
				wins := 0
				for i, err := range errs {
					switch {
					case err == nil:
						wins++
					case !errors.Is(err, tc.loseErr):
						t.Errorf("round %d, goroutine %d: %v, want success or %v", round, i, err, tc.loseErr)
					}
				}
				if wins != 1 {
					t.Errorf("round %d: %d winners, want exactly 1 (errors %v)", round, wins, errs)
				}
				if tc.check != nil {
					tc.check(t, round)
				}
			}
		})
	}
}

func testOAuthConsents(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	c := OAuthConsent{ID: "k1", ClientID: "c1", CreatedAt: oauthT0, ExpiresAt: at(24 * time.Hour)}
	if err := s.PutOAuthConsent(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetOAuthConsent(ctx, "k1", oauthT0); err != nil || !reflect.DeepEqual(got, c) {
		t.Errorf("get: %+v, %v; want %+v", got, err, c)
	}
	// The login completed: the consent now names the person.
	c.Subject = "alice"
	if err := s.PutOAuthConsent(ctx, c); err != nil {
		t.Fatal(err)
	}
	older := OAuthConsent{ID: "k0", ClientID: "c2", Subject: "bob", CreatedAt: at(-time.Hour), ExpiresAt: at(time.Hour)}
	if err := s.PutOAuthConsent(ctx, older); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListOAuthConsents(ctx); err != nil || !reflect.DeepEqual(list, []OAuthConsent{c, older}) {
		t.Errorf("list: %+v, %v; want [k1 with subject, k0]", list, err)
	}
	for _, tc := range []struct {
		now time.Time
		ok  bool
	}{{at(24*time.Hour - time.Microsecond), true}, {at(24 * time.Hour), false}, {at(48 * time.Hour), false}} {
		_, err := s.GetOAuthConsent(ctx, "k1", tc.now)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrNotFound)) {
			t.Errorf("get at %v: %v, want ok=%v", tc.now, err, tc.ok)
		}
	}
	if err := s.DeleteOAuthConsent(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetOAuthConsent(ctx, "k1", oauthT0)
	wantErr(t, "deleted consent", err, ErrNotFound)
	wantErr(t, "second delete", s.DeleteOAuthConsent(ctx, "k1"), ErrNotFound)
}

func testOAuthDeleteClient(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	for _, c := range []string{"c1", "c2"} {
		if err := s.PutOAuthClient(ctx, OAuthClient{ID: c, Agent: "cursor", CreatedAt: oauthT0}); err != nil {
			t.Fatal(err)
		}
		mustPutGrant(t, s, testOAuthGrant("g-"+c, c), "r-"+c)
		mustPutCode(t, s, "used-"+c, "g-"+c, c, at(time.Minute))
		if _, err := s.RedeemOAuthCode(ctx, "used-"+c, oauthT0); err != nil {
			t.Fatal(err)
		}
		mustPutCode(t, s, "code-"+c, "g-"+c, c, at(time.Minute))
		if err := s.PutOAuthConsent(ctx, OAuthConsent{ID: "k-" + c, ClientID: c, ExpiresAt: at(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutOAuthPending(ctx, OAuthPending{ID: "p-" + c, ClientID: c, ExpiresAt: at(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteOAuthClient(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "second delete", s.DeleteOAuthClient(ctx, "c1"), ErrNotFound)

	_, err := s.GetOAuthClient(ctx, "c1", oauthT0)
	wantErr(t, "deleted client", err, ErrNotFound)
	if g := mustGetGrant(t, s, "g-c1"); g.RevokedAt.IsZero() || g.RevokedReason != RevokedClientDeleted {
		t.Errorf("grant of the deleted client: revoked %v for %q", g.RevokedAt, g.RevokedReason)
	}
	_, err = s.RotateOAuthRefresh(ctx, "r-c1", "r-c1-2", at(time.Second), nil)
	wantErr(t, "refresh of the deleted client", err, ErrNotFound)
	for _, h := range []string{"code-c1", "used-c1"} {
		_, err = s.RedeemOAuthCode(ctx, h, at(time.Second))
		wantErr(t, h+" of the deleted client", err, ErrNotFound)
	}
	_, err = s.GetOAuthConsent(ctx, "k-c1", oauthT0)
	wantErr(t, "consent of the deleted client", err, ErrNotFound)
	_, err = s.TakeOAuthPending(ctx, "p-c1", oauthT0)
	wantErr(t, "pending request of the deleted client", err, ErrNotFound)

	// The other client keeps everything.
	if _, err := s.GetOAuthClient(ctx, "c2", oauthT0); err != nil {
		t.Errorf("other client: %v", err)
	}
	if _, err := s.RotateOAuthRefresh(ctx, "r-c2", "r-c2-2", at(time.Second), nil); err != nil {
		t.Errorf("other client's refresh: %v", err)
	}
	if _, err := s.RedeemOAuthCode(ctx, "code-c2", at(time.Second)); err != nil {
		t.Errorf("other client's code: %v", err)
	}
	if _, err := s.GetOAuthConsent(ctx, "k-c2", oauthT0); err != nil {
		t.Errorf("other client's consent: %v", err)
	}
	if _, err := s.TakeOAuthPending(ctx, "p-c2", oauthT0); err != nil {
		t.Errorf("other client's pending request: %v", err)
	}
}

// oauthRows counts the rows of each OAuth table.
func oauthRows(t *testing.T, s Store) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"oauth_clients", "oauth_pending", "oauth_codes", "oauth_grants", "oauth_refresh_tokens", "oauth_consents"} {
		out[table] = countRows(t, s, table)
	}
	return out
}

func testOAuthPurge(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	// Purged at P, two days in.
	P := at(48 * time.Hour)
	before := func(d time.Duration) time.Time { return P.Add(-d) }
	after := func(d time.Duration) time.Time { return P.Add(d) }

	clients := []OAuthClient{
		{ID: "cl-registered"},
		{ID: "cl-cimd-fresh", CIMD: true, ExpiresAt: after(time.Minute)},
		{ID: "cl-cimd-stale", CIMD: true, ExpiresAt: before(time.Minute)},
		{ID: "cl-cimd-stale-in-use", CIMD: true, ExpiresAt: before(time.Minute)},
		{ID: "cl-cimd-stale-revoked", CIMD: true, ExpiresAt: before(time.Minute)},
	}
	for _, c := range clients {
		c.CreatedAt = oauthT0
		if err := s.PutOAuthClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	grant := func(id, client string, expires time.Time, refresh string) {
		g := testOAuthGrant(id, client)
		g.ExpiresAt = expires
		mustPutGrant(t, s, g, refresh)
	}
	grant("g-live", "cl-cimd-stale-in-use", after(time.Hour), "r-live-1")
	if _, err := s.RotateOAuthRefresh(ctx, "r-live-1", "r-live-2", before(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	grant("g-expired", "cl-registered", P, "r-expired")
	grant("g-revoked-old", "cl-registered", after(time.Hour), "r-revoked-old")
	grant("g-revoked-new", "cl-cimd-stale-revoked", after(time.Hour), "r-revoked-new")
	for id, when := range map[string]time.Time{"g-revoked-old": before(25 * time.Hour), "g-revoked-new": before(23 * time.Hour)} {
		if err := s.RevokeOAuthGrant(ctx, id, "logout", when); err != nil {
			t.Fatal(err)
		}
	}

	mustPutCode(t, s, "k-fresh", "g-live", "c", after(time.Minute))
	mustPutCode(t, s, "k-expired", "g-live", "c", P)
	// Used codes stay an hour after their use, expired or not.
	mustPutCode(t, s, "k-used-recently", "g-live", "c", before(29*time.Minute))
	mustPutCode(t, s, "k-used-long-ago", "g-live", "c", before(119*time.Minute))
	mustPutCode(t, s, "k-of-expired-grant", "g-expired", "c", before(5*time.Minute))
	for h, when := range map[string]time.Time{"k-used-recently": before(30 * time.Minute), "k-used-long-ago": before(2 * time.Hour), "k-of-expired-grant": before(10 * time.Minute)} {
		if _, err := s.RedeemOAuthCode(ctx, h, when); err != nil {
			t.Fatalf("redeem %s: %v", h, err)
		}
	}
	for id, exp := range map[string]time.Time{"p-fresh": after(time.Second), "p-expired": P} {
		if err := s.PutOAuthPending(ctx, OAuthPending{ID: id, ClientID: "c", ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	for id, exp := range map[string]time.Time{"k-fresh": after(time.Hour), "k-expired": P} {
		if err := s.PutOAuthConsent(ctx, OAuthConsent{ID: id, ClientID: "c", ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}

	rows := oauthRows(t, s)
	n, err := s.PurgeOAuth(ctx, P)
	if err != nil {
		t.Fatal(err)
	}
	gone := map[string]int{
		"oauth_clients":        2, // cl-cimd-stale, cl-cimd-stale-revoked
		"oauth_pending":        1, // p-expired
		"oauth_codes":          3, // k-expired, k-used-long-ago, k-of-expired-grant
		"oauth_grants":         2, // g-expired, g-revoked-old
		"oauth_refresh_tokens": 2, // theirs
		"oauth_consents":       1, // k-expired
	}
	var total int64
	for table, left := range oauthRows(t, s) {
		if rows[table]-left != gone[table] {
			t.Errorf("%s: %d rows deleted, want %d", table, rows[table]-left, gone[table])
		}
		total += int64(gone[table])
	}
	if n != total {
		t.Errorf("PurgeOAuth = %d, want %d", n, total)
	}

	// What is left is exactly what should be.
	for _, tc := range []struct {
		what string
		err  error
	}{
		{"registered client", func() error { _, err := s.GetOAuthClient(ctx, "cl-registered", P); return err }()},
		{"fresh cimd client", func() error { _, err := s.GetOAuthClient(ctx, "cl-cimd-fresh", P); return err }()},
		{"live grant", func() error { _, err := s.GrantByRefresh(ctx, "r-live-2"); return err }()},
		{"live grant's former token", func() error { _, err := s.GrantByRefresh(ctx, "r-live-1"); return err }()},
		{"recently revoked grant", func() error { _, err := s.GrantByRefresh(ctx, "r-revoked-new"); return err }()},
		{"fresh pending request", func() error { _, err := s.TakeOAuthPending(ctx, "p-fresh", P); return err }()},
		{"fresh consent", func() error { _, err := s.GetOAuthConsent(ctx, "k-fresh", P); return err }()},
		{"fresh code", func() error { _, err := s.RedeemOAuthCode(ctx, "k-fresh", P); return err }()},
		{"recently used code", func() error { _, err := s.RedeemOAuthCode(ctx, "k-used-recently", P); return err }()},
	} {
		if tc.err != nil && !errors.Is(tc.err, ErrReplayed) {
			t.Errorf("%s: %v, want it kept", tc.what, tc.err)
		}
	}
	for _, id := range []string{"g-expired", "g-revoked-old"} {
		_, err := s.GetOAuthGrant(ctx, id)
		wantErr(t, "purged "+id, err, ErrNotFound)
	}
	// The stale CIMD client with a live grant stays, though Get calls it
	// expired.
	_, err = s.GetOAuthClient(ctx, "cl-cimd-stale-in-use", P)
	wantErr(t, "stale cimd client", err, ErrNotFound)
	if list, _ := s.ListOAuthClients(ctx); !slices.ContainsFunc(list, func(c OAuthClient) bool { return c.ID == "cl-cimd-stale-in-use" }) {
		t.Error("the stale metadata document of a client with a live grant was purged")
	}

	if n, err := s.PurgeOAuth(ctx, P); err != nil || n != 0 {
		t.Errorf("second purge = %d, %v; want 0", n, err)
	}
}

func testOAuthInvalid(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	exp := at(time.Hour)
	okGrant := testOAuthGrant("g1", "c1")
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"client without id", s.PutOAuthClient(ctx, OAuthClient{})},
		{"client with a long id", s.PutOAuthClient(ctx, OAuthClient{ID: "https://x.example.com/" + strings.Repeat("a", maxOAuthIDLen)})},
		{"client metadata not JSON", s.PutOAuthClient(ctx, OAuthClient{ID: "c1", Metadata: []byte(`{"a":`)})},
		{"client name not UTF-8", s.PutOAuthClient(ctx, OAuthClient{ID: "c1", Name: "\xff"})},
		{"client redirect with NUL", s.PutOAuthClient(ctx, OAuthClient{ID: "c1", RedirectURIs: []string{"https://a\x00"}})},
		{"pending without id", s.PutOAuthPending(ctx, OAuthPending{ClientID: "c1", ExpiresAt: exp})},
		{"pending without client", s.PutOAuthPending(ctx, OAuthPending{ID: "p1", ExpiresAt: exp})},
		{"pending without expiry", s.PutOAuthPending(ctx, OAuthPending{ID: "p1", ClientID: "c1"})},
		{"code without hash", s.PutOAuthCode(ctx, OAuthCode{GrantID: "g1", ClientID: "c1", ExpiresAt: exp})},
		{"code without grant", s.PutOAuthCode(ctx, OAuthCode{Hash: "h", ClientID: "c1", ExpiresAt: exp})},
		{"code without expiry", s.PutOAuthCode(ctx, OAuthCode{Hash: "h", GrantID: "g1", ClientID: "c1"})},
		{"grant without id", s.PutOAuthGrant(ctx, OAuthGrant{ClientID: "c1", ExpiresAt: exp}, "")},
		{"grant without expiry", s.PutOAuthGrant(ctx, OAuthGrant{ID: "g1", ClientID: "c1"}, "")},
		{"grant claims not JSON", s.PutOAuthGrant(ctx, OAuthGrant{ID: "g1", ClientID: "c1", ExpiresAt: exp, Claims: []byte("name=x")}, "")},
		{"grant group not UTF-8", s.PutOAuthGrant(ctx, OAuthGrant{ID: "g1", ClientID: "c1", ExpiresAt: exp, Groups: []string{"\xc3"}}, "")},
		{"consent without expiry", s.PutOAuthConsent(ctx, OAuthConsent{ID: "k1", ClientID: "c1"})},
	} {
		if tc.err == nil {
			t.Errorf("%s: stored", tc.name)
		}
	}
	if rows := oauthRows(t, s); slices.ContainsFunc(slices.Collect(maps.Values(rows)), func(n int) bool { return n != 0 }) {
		t.Errorf("refused puts left rows: %v", rows)
	}
	// An update that breaks the grant aborts the rotation.
	mustPutGrant(t, s, okGrant, "r1")
	for name, update := range map[string]func(*OAuthGrant) error{
		"claims not JSON": func(g *OAuthGrant) error { g.Claims = []byte("{"); return nil },
		"expiry removed":  func(g *OAuthGrant) error { g.ExpiresAt = time.Time{}; return nil },
		"group not UTF-8": func(g *OAuthGrant) error { g.Groups = []string{"\xff"}; return nil },
	} {
		if _, err := s.RotateOAuthRefresh(ctx, "r1", "r2", oauthT0, update); err == nil {
			t.Errorf("update with %s: rotated", name)
		}
	}
	if got := mustGetGrant(t, s, "g1"); !reflect.DeepEqual(got, okGrant) {
		t.Errorf("grant after refused updates:\n got  %+v\n want %+v", got, okGrant)
	}
}

func testOAuthAudit(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	in := []audit.Record{
		{ID: "o1", Time: at(time.Second), Kind: audit.KindOAuth, Action: audit.ActionRegister, Allow: true, Agent: "cursor",
			ObjectKind: audit.ObjectOAuthClient, ObjectName: "c-4f2a", Reasons: []string{"rule 1: client_name Cursor*"}},
		{ID: "o2", Time: at(2 * time.Second), Kind: audit.KindOAuth, Action: audit.ActionToken, Allow: true, Subject: "alice",
			Issuer: "https://idp.example.com", Agent: "cursor", ObjectKind: audit.ObjectOAuthClient, ObjectName: "c-4f2a", RequestID: "req-7"},
		{ID: "o3", Time: at(3 * time.Second), Kind: audit.KindOAuth, Action: audit.ActionRefuse, Reasons: []string{"redirect_uri not registered"}},
		{ID: "d1", Time: at(4 * time.Second), Kind: audit.KindDecision, Subject: "alice", Agent: "cursor", Allow: true},
	}
	if err := s.AppendAudit(ctx, in...); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		q    audit.Query
		want []string
	}{
		{"kind", audit.Query{Kind: audit.KindOAuth}, []string{"o3", "o2", "o1"}},
		{"refusals", audit.Query{Kind: audit.KindOAuth, Decision: audit.DecisionDeny}, []string{"o3"}},
		{"subject", audit.Query{Kind: audit.KindOAuth, Subject: "alice"}, []string{"o2"}},
		{"agent", audit.Query{Agent: "cursor"}, []string{"d1", "o2", "o1"}},
	} {
		recs, _, err := s.QueryAudit(ctx, tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, ids, tc.want)
		}
	}
	recs, _, err := s.QueryAudit(ctx, audit.Query{Kind: audit.KindOAuth, Until: at(2*time.Second + time.Microsecond), Since: at(2 * time.Second)})
	if err != nil || len(recs) != 1 {
		t.Fatalf("o2 alone: %+v, %v", recs, err)
	}
	if want := in[1].Normalize(); !reflect.DeepEqual(recs[0], want) {
		t.Errorf("round trip:\n got  %+v\n want %+v", recs[0], want)
	}
}

// testOAuthReplicas: a code issued through one handle is redeemed through
// another, and its refresh token rotates there.
func testOAuthReplicas(t *testing.T, b dbUnderTest) {
	dsn := b.newDSN(t)
	one, two := openTest(t, dsn), openTest(t, dsn)
	ctx := context.Background()
	if err := one.PutOAuthPending(ctx, OAuthPending{ID: "st", ClientID: "c1", Secret: []byte("sealed"), ExpiresAt: at(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if p, err := two.TakeOAuthPending(ctx, "st", oauthT0); err != nil || string(p.Secret) != "sealed" {
		t.Fatalf("take on the other replica: %+v, %v", p, err)
	}
	mustPutGrant(t, one, testOAuthGrant("g1", "c1"), "r1")
	mustPutCode(t, one, "h1", "g1", "c1", at(time.Minute))
	if _, err := two.RedeemOAuthCode(ctx, "h1", oauthT0); err != nil {
		t.Fatalf("redeem on the other replica: %v", err)
	}
	if _, err := two.RotateOAuthRefresh(ctx, "r1", "r2", oauthT0, nil); err != nil {
		t.Fatalf("rotate on the other replica: %v", err)
	}
	_, err := one.RotateOAuthRefresh(ctx, "r1", "r3", oauthT0, nil)
	wantErr(t, "reuse on the first replica", err, ErrReplayed)
}

// testOAuthMigration builds a database as release 0004 left it, with audit
// records in it, and opens it with this release: 0005 adds the OAuth
// tables and the oauth kind, and keeps the records and the indexes.
func testOAuthMigration(t *testing.T, b dbUnderTest) {
	dsn := b.newDSN(t)
	ctx := context.Background()
	old := openAtMigration(t, dsn, 4)
	kept := []audit.Record{
		{ID: "d-old", Time: at(time.Second), Kind: audit.KindDecision, Subject: "alice", Issuer: "https://idp", Agent: "cursor",
			Backend: "employees", Method: "tools/call", Tool: "get", Reasons: []string{"ok"}},
		{ID: "t-old", Time: at(2 * time.Second), Kind: audit.KindToolChange, Backend: "notes", Tool: "echo", Action: audit.ActionSeen,
			ObjectKind: audit.ObjectTool, ObjectName: "echo", After: []byte(`{"name":"echo"}`), Allow: true},
	}
	if err := old.AppendAudit(ctx, kept...); err != nil {
		t.Fatal(err)
	}
	oauthRec := audit.Record{ID: "o-new", Time: at(3 * time.Second), Kind: audit.KindOAuth, Action: audit.ActionRegister, Allow: true,
		ObjectKind: audit.ObjectOAuthClient, ObjectName: "c1"}
	if err := old.AppendAudit(ctx, oauthRec); err == nil {
		t.Fatal("the 0004 schema took an oauth record: the test does not start where 0004 left off")
	}
	if _, err := old.db.ExecContext(ctx, "SELECT count(*) FROM oauth_grants"); err == nil {
		t.Fatal("the 0004 schema has oauth_grants")
	}
	_ = old.Close()

	s := openTest(t, dsn)
	if got, want := countRows(t, s, "schema_migrations"), migrationCount(t, s.(*sqlStore).d); got != want {
		t.Errorf("schema_migrations has %d rows, want %d", got, want)
	}
	if err := s.AppendAudit(ctx, oauthRec); err != nil {
		t.Fatalf("oauth record after the migration: %v", err)
	}
	recs, _, err := s.QueryAudit(ctx, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	want := []audit.Record{oauthRec.Normalize(), kept[1].Normalize(), kept[0].Normalize()}
	if len(recs) != len(want) {
		t.Fatalf("%d records after the migration, want %d: %+v", len(recs), len(want), recs)
	}
	for i := range want {
		jsonEq(t, want[i].ID+" after", recs[i].After, want[i].After)
		recs[i].After, want[i].After = nil, nil
		if !reflect.DeepEqual(recs[i], want[i]) {
			t.Errorf("record %d after the migration:\n got  %+v\n want %+v", i, recs[i], want[i])
		}
	}
	// SQLite rebuilt the table: its indexes must be back.
	q := "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_records' AND name NOT LIKE 'sqlite_autoindex%'"
	if s.(*sqlStore).d.name == postgresDialect.name {
		q = "SELECT indexname FROM pg_indexes WHERE tablename = 'audit_records' AND schemaname = current_schema() AND indexname <> 'audit_records_pkey'"
	}
	rows, err := s.(*sqlStore).db.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var idx []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		idx = append(idx, n)
	}
	slices.Sort(idx)
	wantIdx := []string{"audit_records_agent_at", "audit_records_at", "audit_records_backend_at", "audit_records_input_at", "audit_records_issuer_subject_at",
		"audit_records_object_at", "audit_records_subject_at"}
	if !slices.Equal(idx, wantIdx) {
		t.Errorf("audit_records indexes = %v, want %v", idx, wantIdx)
	}
	// And the OAuth tables work on the migrated database.
	mustPutGrant(t, s, testOAuthGrant("g1", "c1"), "r1")
	if _, err := s.RotateOAuthRefresh(ctx, "r1", "r2", oauthT0, nil); err != nil {
		t.Errorf("rotate on the migrated database: %v", err)
	}
}
