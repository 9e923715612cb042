package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// OAuthStore persists the state of the gateway's OAuth 2.1 authorization
// server (internal/oauthserver): clients, authorization requests on their way
// through the IdP, codes, grants with their rotating refresh tokens, and
// consents. All of it lives in the store, so that any replica redeems what
// another issued. Codes and refresh tokens are known by their SHA-256 hash
// only; secrets of the upstream IdP (OAuthPending.Secret, OAuthGrant.Upstream)
// arrive encrypted by the caller and are opaque here.
//
// Times given as now decide expiry, so that every replica and every test
// agrees on it; an ExpiresAt is past when it is not after now.
type OAuthStore interface {
	// PutOAuthClient creates or replaces the client c.ID (a zero CreatedAt
	// is now).
	PutOAuthClient(ctx context.Context, c OAuthClient) error
	// GetOAuthClient returns the client; wrapped ErrNotFound when there is
	// none or its ExpiresAt (when set) is past at now.
	GetOAuthClient(ctx context.Context, id string, now time.Time) (OAuthClient, error)
	// ListOAuthClients returns every client, expired ones too, newest first.
	ListOAuthClients(ctx context.Context) ([]OAuthClient, error)
	// DeleteOAuthClient deletes the client and, in the same transaction,
	// revokes its grants (reason "client deleted") and deletes its codes,
	// consents and pending requests. Wrapped ErrNotFound when there is no
	// such client (and nothing is changed).
	DeleteOAuthClient(ctx context.Context, id string) error

	// PutOAuthPending stores an authorization request; its ID must be new.
	PutOAuthPending(ctx context.Context, p OAuthPending) error
	// TakeOAuthPending deletes the request and returns it, atomically: of
	// two concurrent takes exactly one gets it. Wrapped ErrNotFound when it
	// is absent, already taken or expired at now (an expired one is
	// deleted all the same).
	TakeOAuthPending(ctx context.Context, id string, now time.Time) (OAuthPending, error)

	// PutOAuthCode stores an authorization code (by hash) of the grant
	// c.GrantID, which must be stored before the code is redeemed.
	PutOAuthCode(ctx context.Context, c OAuthCode) error
	// RedeemOAuthCode marks the code used and returns it, atomically: of
	// two concurrent redemptions exactly one succeeds. Unknown, expired at
	// now, or of a grant that is revoked or gone: wrapped ErrNotFound.
	// Already used (kept an hour after use, see PurgeOAuth): the code and
	// an error wrapping ErrReplayed; the caller revokes the grant.
	RedeemOAuthCode(ctx context.Context, hash string, now time.Time) (OAuthCode, error)

	// PutOAuthGrant creates the grant g (its ID must be new) with its first
	// refresh token's hash; refreshHash "" creates it without one (a grant
	// without refresh tokens, or one whose first token is installed later by
	// RotateOAuthRefresh from a placeholder hash). Zero CreatedAt and
	// UpdatedAt are now; ExpiresAt is required.
	PutOAuthGrant(ctx context.Context, g OAuthGrant, refreshHash string) error
	// GetOAuthGrant returns the grant as stored, revoked or expired too
	// (see OAuthGrant.Active); wrapped ErrNotFound when there is none.
	GetOAuthGrant(ctx context.Context, id string) (OAuthGrant, error)
	// RotateOAuthRefresh, in one transaction, finds the grant whose current
	// refresh token is oldHash, lets update change it (Groups, Claims,
	// Upstream and ExpiresAt are stored; other fields are not), makes
	// newHash its current refresh token and keeps oldHash as used. It
	// returns the grant as stored. An error from update aborts the
	// rotation and is returned wrapped.
	//
	// oldHash being a former token of a grant (already rotated) is reuse
	// (RFC 9700, 4.14.2): the grant is revoked with reason "refresh token
	// reuse" and returned, revoked, with an error wrapping ErrReplayed. Of two concurrent rotations of
	// one token exactly one succeeds and the other is such a reuse, which
	// revokes the family. An unknown hash, or a grant revoked or expired at
	// now: wrapped ErrNotFound.
	RotateOAuthRefresh(ctx context.Context, oldHash, newHash string, now time.Time, update func(*OAuthGrant) error) (OAuthGrant, error)
	// GrantByRefresh returns the grant a refresh token, current or former,
	// belongs to, revoked or expired too (RFC 7009 revocation); wrapped
	// ErrNotFound for an unknown hash.
	GrantByRefresh(ctx context.Context, hash string) (OAuthGrant, error)
	// RevokeOAuthGrant revokes the grant at now, so that none of its refresh
	// tokens rotates any more, and deletes its unused codes. Revoking a
	// revoked grant changes nothing and is no error; wrapped ErrNotFound
	// when there is no such grant.
	RevokeOAuthGrant(ctx context.Context, id, reason string, now time.Time) error
	// ListOAuthGrants returns the grants f selects, revoked and expired
	// ones too, newest first, without Upstream.
	ListOAuthGrants(ctx context.Context, f OAuthGrantFilter) ([]OAuthGrant, error)

	// PutOAuthConsent creates or replaces the consent c.ID (a zero
	// CreatedAt is now; ExpiresAt is required).
	PutOAuthConsent(ctx context.Context, c OAuthConsent) error
	// GetOAuthConsent returns the consent; wrapped ErrNotFound when there
	// is none or it expired at now.
	GetOAuthConsent(ctx context.Context, id string, now time.Time) (OAuthConsent, error)
	// ListOAuthConsents returns every consent, expired ones too, newest
	// first.
	ListOAuthConsents(ctx context.Context) ([]OAuthConsent, error)
	// DeleteOAuthConsent deletes the consent; wrapped ErrNotFound when
	// there is none.
	DeleteOAuthConsent(ctx context.Context, id string) error

	// PurgeOAuth deletes what can no longer be used at now: expired pending
	// requests and consents; unused codes past their expiry and used ones
	// an hour after their use; grants past their ExpiresAt or revoked more
	// than 24 hours ago, with their refresh tokens and codes; and clients
	// whose ExpiresAt is past (cached metadata documents) and that have no
	// active grant. It returns the number of rows deleted.
	PurgeOAuth(ctx context.Context, now time.Time) (int64, error)
}

// OAuthClient is a client registered at the gateway (RFC 7591) or known by
// its Client ID Metadata Document.
type OAuthClient struct {
	ID              string // client_id: gateway-generated, or the CIMD https URL
	Name            string // client_name
	SoftwareID      string
	SoftwareVersion string
	RedirectURIs    []string
	Agent           string // the pre-configured agent it is bound to
	Metadata        []byte // the registration document as received (JSON), shown by the admin API
	CIMD            bool   // known by its metadata document, not registered
	CreatedAt       time.Time
	ExpiresAt       time.Time // zero: never (a CIMD entry expires when its cache does)
}

// OAuthPending is an authorization request between /authorize and the
// IdP's callback; it is taken once.
type OAuthPending struct {
	ID            string // random; the state sent to the IdP
	ClientID      string
	RedirectURI   string
	State         string // the client's state
	CodeChallenge string
	Resource      string
	Scope         string
	ConsentID     string
	Secret        []byte // opaque: the caller encrypts (upstream PKCE verifier and nonce)
	ExpiresAt     time.Time
}

// OAuthCode is an authorization code, known by its SHA-256 hash.
type OAuthCode struct {
	Hash                                           string
	GrantID                                        string
	ClientID, RedirectURI, CodeChallenge, Resource string
	ExpiresAt                                      time.Time
}

// OAuthGrant is one token family: a login of one user through one client.
// Its refresh tokens rotate inside it; revoking it ends them all.
type OAuthGrant struct {
	ID                               string
	ClientID, Agent, Subject, Issuer string // Issuer: the upstream IdP's issuer
	Groups, Scopes                   []string
	Resource                         string
	Claims                           []byte // JSON of the profile claims for userinfo (name, email…)
	Upstream                         []byte // opaque: caller-encrypted IdP tokens
	CreatedAt, UpdatedAt, ExpiresAt  time.Time
	RevokedAt                        time.Time // zero: active
	RevokedReason                    string
}

// Active reports a grant neither revoked nor expired at now.
func (g OAuthGrant) Active(now time.Time) bool {
	return g.RevokedAt.IsZero() && g.ExpiresAt.After(now)
}

// OAuthGrantFilter selects grants; empty fields select any.
type OAuthGrantFilter struct {
	ClientID string
	Subject  string
}

// OAuthConsent is a person's approval of a client, remembered for the
// configured consent TTL.
type OAuthConsent struct {
	ID, ClientID, Subject string // Subject "" until the IdP login completed
	CreatedAt, ExpiresAt  time.Time
}

// Revocation reasons the store writes itself.
const (
	RevokedRefreshReuse  = "refresh token reuse"
	RevokedClientDeleted = "client deleted"
)

// How long PurgeOAuth keeps a used code (to recognize its replay) and a
// revoked grant (to answer for its tokens).
const (
	usedCodeRetention     = time.Hour
	revokedGrantRetention = 24 * time.Hour
)

// maxOAuthIDLen bounds ids, hashes and other keys; a CIMD client_id is a
// URL, longer than an object name.
const maxOAuthIDLen = 2048

func checkOAuthID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s is empty", what)
	case len(id) > maxOAuthIDLen:
		return fmt.Errorf("%s is longer than %d bytes", what, maxOAuthIDLen)
	case !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0:
		return fmt.Errorf("%s is not valid UTF-8 text", what)
	}
	return nil
}

func checkJSON(what string, b []byte) error {
	if len(b) > 0 && (!json.Valid(b) || !utf8.Valid(b)) {
		return fmt.Errorf("%s is not valid JSON", what)
	}
	return nil
}

// checkText refuses what PostgreSQL cannot store as TEXT (and SQLite
// would), so that both dialects accept the same values.
func checkText(fields ...string) error {
	for _, f := range fields {
		if !utf8.ValidString(f) || strings.IndexByte(f, 0) >= 0 {
			return fmt.Errorf("%q is not valid UTF-8 text", f)
		}
	}
	return nil
}

// usOf is t in microseconds, 0 for the zero time (none, never).
func usOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// timeOf undoes usOf.
func timeOf(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// orNow is t, or now when t is zero.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

func encodeList(l []string) (string, error) {
	if len(l) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(l)
	return string(b), err
}

func decodeList(s string, into *[]string) error {
	if s == "" || s == "[]" {
		*into = nil
		return nil
	}
	return json.Unmarshal([]byte(s), into)
}

// orNil makes an empty blob nil, as it was given.
func orNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// forUpdate locks the rows a SELECT reads until the transaction ends; SQLite
// needs nothing, its write transactions being exclusive from the start.
func (s *sqlStore) forUpdate() string {
	if s.d.name == postgresDialect.name {
		return " FOR UPDATE"
	}
	return ""
}

// inTx runs fn in a plain transaction.
func (s *sqlStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Transactions that lock several OAuth tables take them in one order,
// oauth_grants, oauth_refresh_tokens, oauth_codes, then the rest, so that on
// PostgreSQL two of them never wait for each other in a circle.

// Clients.

const clientColumns = "id, name, software_id, software_version, redirect_uris, agent, metadata, cimd, created_us, expires_us"

func scanClient(sc interface{ Scan(...any) error }) (OAuthClient, error) {
	var (
		c                OAuthClient
		uris, meta       string
		created, expires int64
	)
	if err := sc.Scan(&c.ID, &c.Name, &c.SoftwareID, &c.SoftwareVersion, &uris, &c.Agent, &meta, &c.CIMD, &created, &expires); err != nil {
		return c, err
	}
	if err := decodeList(uris, &c.RedirectURIs); err != nil {
		return c, fmt.Errorf("decode redirect_uris of %q: %w", c.ID, err)
	}
	if meta != "" {
		c.Metadata = []byte(meta)
	}
	c.CreatedAt, c.ExpiresAt = timeOf(created), timeOf(expires)
	return c, nil
}

func (s *sqlStore) PutOAuthClient(ctx context.Context, c OAuthClient) error {
	if err := checkOAuthID("client id", c.ID); err != nil {
		return fmt.Errorf("store: put oauth client: %w", err)
	}
	if err := checkJSON("metadata", c.Metadata); err != nil {
		return fmt.Errorf("store: put oauth client %q: %w", c.ID, err)
	}
	if err := checkText(append([]string{c.Name, c.SoftwareID, c.SoftwareVersion, c.Agent}, c.RedirectURIs...)...); err != nil {
		return fmt.Errorf("store: put oauth client %q: %w", c.ID, err)
	}
	uris, err := encodeList(c.RedirectURIs)
	if err != nil {
		return fmt.Errorf("store: put oauth client %q: %w", c.ID, err)
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO oauth_clients ("+clientColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"+
		" ON CONFLICT (id) DO UPDATE SET name = excluded.name, software_id = excluded.software_id,"+
		" software_version = excluded.software_version, redirect_uris = excluded.redirect_uris, agent = excluded.agent,"+
		" metadata = excluded.metadata, cimd = excluded.cimd, created_us = excluded.created_us, expires_us = excluded.expires_us",
		c.ID, c.Name, c.SoftwareID, c.SoftwareVersion, uris, c.Agent, string(c.Metadata), c.CIMD,
		orNow(c.CreatedAt).UnixMicro(), usOf(c.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store: put oauth client %q: %w", c.ID, err)
	}
	return nil
}

func (s *sqlStore) GetOAuthClient(ctx context.Context, id string, now time.Time) (OAuthClient, error) {
	c, err := scanClient(s.db.QueryRowContext(ctx, "SELECT "+clientColumns+" FROM oauth_clients WHERE id = $1", id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return OAuthClient{}, fmt.Errorf("store: oauth client %q: %w", id, ErrNotFound)
	case err != nil:
		return OAuthClient{}, fmt.Errorf("store: get oauth client %q: %w", id, err)
	case !c.ExpiresAt.IsZero() && !c.ExpiresAt.After(now):
		return OAuthClient{}, fmt.Errorf("store: oauth client %q: expired: %w", id, ErrNotFound)
	}
	return c, nil
}

func (s *sqlStore) ListOAuthClients(ctx context.Context) ([]OAuthClient, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+clientColumns+" FROM oauth_clients ORDER BY created_us DESC, id")
	if err != nil {
		return nil, fmt.Errorf("store: list oauth clients: %w", err)
	}
	defer rows.Close()
	var out []OAuthClient
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list oauth clients: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list oauth clients: %w", err)
	}
	return out, nil
}

func (s *sqlStore) DeleteOAuthClient(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := time.Now().UnixMicro()
		if _, err := tx.ExecContext(ctx, "UPDATE oauth_grants SET revoked_us = $2, revoked_reason = $3, updated_us = $2"+
			" WHERE client_id = $1 AND revoked_us = 0", id, now, RevokedClientDeleted); err != nil {
			return fmt.Errorf("revoke grants: %w", err)
		}
		for _, table := range []string{"oauth_codes", "oauth_pending", "oauth_consents"} {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE client_id = $1", id); err != nil {
				return fmt.Errorf("delete from %s: %w", table, err)
			}
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM oauth_clients WHERE id = $1", id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete oauth client %q: %w", id, err)
	}
	return nil
}

// Pending authorization requests.

func (s *sqlStore) PutOAuthPending(ctx context.Context, p OAuthPending) error {
	if err := checkOAuthID("pending request id", p.ID); err != nil {
		return fmt.Errorf("store: put oauth pending request: %w", err)
	}
	if err := checkOAuthID("client id", p.ClientID); err != nil {
		return fmt.Errorf("store: put oauth pending request: %w", err)
	}
	if err := checkText(p.RedirectURI, p.State, p.CodeChallenge, p.Resource, p.Scope, p.ConsentID); err != nil {
		return fmt.Errorf("store: put oauth pending request: %w", err)
	}
	if p.ExpiresAt.IsZero() {
		return fmt.Errorf("store: put oauth pending request: no expiry")
	}
	_, err := s.db.ExecContext(ctx, "INSERT INTO oauth_pending (id, client_id, redirect_uri, state, code_challenge, resource, scope,"+
		" consent_id, secret, expires_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		p.ID, p.ClientID, p.RedirectURI, p.State, p.CodeChallenge, p.Resource, p.Scope, p.ConsentID, orNil(p.Secret), p.ExpiresAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("store: put oauth pending request: %w", err)
	}
	return nil
}

func (s *sqlStore) TakeOAuthPending(ctx context.Context, id string, now time.Time) (OAuthPending, error) {
	// One statement: of concurrent deletes of one row exactly one returns
	// it, in both dialects.
	var (
		p       OAuthPending
		expires int64
	)
	err := s.db.QueryRowContext(ctx, "DELETE FROM oauth_pending WHERE id = $1 RETURNING id, client_id, redirect_uri, state,"+
		" code_challenge, resource, scope, consent_id, secret, expires_us", id).
		Scan(&p.ID, &p.ClientID, &p.RedirectURI, &p.State, &p.CodeChallenge, &p.Resource, &p.Scope, &p.ConsentID, &p.Secret, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return OAuthPending{}, fmt.Errorf("store: oauth pending request: %w", ErrNotFound)
	case err != nil:
		return OAuthPending{}, fmt.Errorf("store: take oauth pending request: %w", err)
	}
	p.Secret, p.ExpiresAt = orNil(p.Secret), timeOf(expires)
	if !p.ExpiresAt.After(now) {
		return OAuthPending{}, fmt.Errorf("store: oauth pending request: expired: %w", ErrNotFound)
	}
	return p, nil
}

// Authorization codes.

const codeColumns = "hash, grant_id, client_id, redirect_uri, code_challenge, resource, expires_us"

func (s *sqlStore) PutOAuthCode(ctx context.Context, c OAuthCode) error {
	if err := checkOAuthID("code hash", c.Hash); err != nil {
		return fmt.Errorf("store: put oauth code: %w", err)
	}
	if err := checkOAuthID("grant id", c.GrantID); err != nil {
		return fmt.Errorf("store: put oauth code: %w", err)
	}
	if err := checkOAuthID("client id", c.ClientID); err != nil {
		return fmt.Errorf("store: put oauth code: %w", err)
	}
	if err := checkText(c.RedirectURI, c.CodeChallenge, c.Resource); err != nil {
		return fmt.Errorf("store: put oauth code: %w", err)
	}
	if c.ExpiresAt.IsZero() {
		return fmt.Errorf("store: put oauth code: no expiry")
	}
	_, err := s.db.ExecContext(ctx, "INSERT INTO oauth_codes ("+codeColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7)",
		c.Hash, c.GrantID, c.ClientID, c.RedirectURI, c.CodeChallenge, c.Resource, c.ExpiresAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("store: put oauth code: %w", err)
	}
	return nil
}

func scanCode(sc interface{ Scan(...any) error }, extra ...any) (OAuthCode, error) {
	var (
		c       OAuthCode
		expires int64
	)
	dest := append([]any{&c.Hash, &c.GrantID, &c.ClientID, &c.RedirectURI, &c.CodeChallenge, &c.Resource, &expires}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return c, err
	}
	c.ExpiresAt = timeOf(expires)
	return c, nil
}

func (s *sqlStore) RedeemOAuthCode(ctx context.Context, hash string, now time.Time) (OAuthCode, error) {
	// The conditional update is the redemption: on PostgreSQL a second one
	// waits for the first's row lock, then finds used_us set and matches
	// nothing; SQLite runs writers one at a time.
	c, err := scanCode(s.db.QueryRowContext(ctx, "UPDATE oauth_codes SET used_us = $2"+
		" WHERE hash = $1 AND used_us = 0 AND expires_us > $3"+
		" AND EXISTS (SELECT 1 FROM oauth_grants g WHERE g.id = oauth_codes.grant_id AND g.revoked_us = 0)"+
		" RETURNING "+codeColumns, hash, max(now.UnixMicro(), 1), now.UnixMicro()))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return OAuthCode{}, fmt.Errorf("store: redeem oauth code: %w", err)
	}
	// Why not: a new statement, which sees what the winner committed.
	var used int64
	c, err = scanCode(s.db.QueryRowContext(ctx, "SELECT "+codeColumns+", used_us FROM oauth_codes WHERE hash = $1", hash), &used)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return OAuthCode{}, fmt.Errorf("store: oauth code: %w", ErrNotFound)
	case err != nil:
		return OAuthCode{}, fmt.Errorf("store: redeem oauth code: %w", err)
	case used != 0:
		return c, fmt.Errorf("store: oauth code of grant %q used at %s: %w", c.GrantID, timeOf(used).Format(time.RFC3339Nano), ErrReplayed)
	case !c.ExpiresAt.After(now):
		return OAuthCode{}, fmt.Errorf("store: oauth code: expired: %w", ErrNotFound)
	default:
		return OAuthCode{}, fmt.Errorf("store: oauth code: grant %q revoked or gone: %w", c.GrantID, ErrNotFound)
	}
}

// Grants and refresh tokens.

const grantColumns = "id, client_id, agent, subject, issuer, groups_json, scopes_json, resource, claims, upstream," +
	" created_us, updated_us, expires_us, revoked_us, revoked_reason"

// grantListColumns leave the upstream tokens out of lists.
var grantListColumns = strings.Replace(grantColumns, "upstream", "NULL", 1)

func scanGrant(sc interface{ Scan(...any) error }) (OAuthGrant, error) {
	var (
		g                                 OAuthGrant
		groups, scopes, claims            string
		created, updated, expires, revoke int64
	)
	if err := sc.Scan(&g.ID, &g.ClientID, &g.Agent, &g.Subject, &g.Issuer, &groups, &scopes, &g.Resource, &claims, &g.Upstream,
		&created, &updated, &expires, &revoke, &g.RevokedReason); err != nil {
		return g, err
	}
	if err := decodeList(groups, &g.Groups); err != nil {
		return g, fmt.Errorf("decode groups of grant %q: %w", g.ID, err)
	}
	if err := decodeList(scopes, &g.Scopes); err != nil {
		return g, fmt.Errorf("decode scopes of grant %q: %w", g.ID, err)
	}
	if claims != "" {
		g.Claims = []byte(claims)
	}
	g.Upstream = orNil(g.Upstream)
	g.CreatedAt, g.UpdatedAt, g.ExpiresAt, g.RevokedAt = timeOf(created), timeOf(updated), timeOf(expires), timeOf(revoke)
	return g, nil
}

func getGrant(ctx context.Context, q queryer, id, lock string) (OAuthGrant, error) {
	g, err := scanGrant(q.QueryRowContext(ctx, "SELECT "+grantColumns+" FROM oauth_grants WHERE id = $1"+lock, id))
	if errors.Is(err, sql.ErrNoRows) {
		return g, ErrNotFound
	}
	return g, err
}

func (s *sqlStore) PutOAuthGrant(ctx context.Context, g OAuthGrant, refreshHash string) error {
	if err := checkOAuthID("grant id", g.ID); err != nil {
		return fmt.Errorf("store: put oauth grant: %w", err)
	}
	if refreshHash != "" {
		if err := checkOAuthID("refresh token hash", refreshHash); err != nil {
			return fmt.Errorf("store: put oauth grant %q: %w", g.ID, err)
		}
	}
	if err := checkOAuthID("client id", g.ClientID); err != nil {
		return fmt.Errorf("store: put oauth grant %q: %w", g.ID, err)
	}
	if err := checkText(append(append([]string{g.Agent, g.Subject, g.Issuer, g.Resource, g.RevokedReason}, g.Groups...), g.Scopes...)...); err != nil {
		return fmt.Errorf("store: put oauth grant %q: %w", g.ID, err)
	}
	if g.ExpiresAt.IsZero() {
		return fmt.Errorf("store: put oauth grant %q: no expiry", g.ID)
	}
	if err := checkJSON("claims", g.Claims); err != nil {
		return fmt.Errorf("store: put oauth grant %q: %w", g.ID, err)
	}
	groups, err := encodeList(g.Groups)
	if err != nil {
		return fmt.Errorf("store: put oauth grant %q: %w", g.ID, err)
	}
	scopes, err := encodeList(g.Scopes)
	if err != nil {
		return fmt.Errorf("store: put oauth grant %q: %w", g.ID, err)
	}
	created := orNow(g.CreatedAt)
	updated := g.UpdatedAt
	if updated.IsZero() {
		updated = created
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO oauth_grants ("+grantColumns+")"+
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
			g.ID, g.ClientID, g.Agent, g.Subject, g.Issuer, groups, scopes, g.Resource, string(g.Claims), orNil(g.Upstream),
			created.UnixMicro(), updated.UnixMicro(), g.ExpiresAt.UnixMicro(), usOf(g.RevokedAt), g.RevokedReason); err != nil {
			return err
		}
		if refreshHash == "" {
			return nil
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO oauth_refresh_tokens (hash, grant_id, created_us) VALUES ($1, $2, $3)",
			refreshHash, g.ID, created.UnixMicro()); err != nil {
			return fmt.Errorf("refresh token: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: put oauth grant %q: %w", g.ID, err)
	}
	return nil
}

func (s *sqlStore) GetOAuthGrant(ctx context.Context, id string) (OAuthGrant, error) {
	g, err := getGrant(ctx, s.db, id, "")
	if err != nil {
		return OAuthGrant{}, fmt.Errorf("store: oauth grant %q: %w", id, err)
	}
	return g, nil
}

func (s *sqlStore) GrantByRefresh(ctx context.Context, hash string) (OAuthGrant, error) {
	g, err := scanGrant(s.db.QueryRowContext(ctx, "SELECT "+prefixed("g.", grantColumns)+
		" FROM oauth_refresh_tokens r JOIN oauth_grants g ON g.id = r.grant_id WHERE r.hash = $1", hash))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return OAuthGrant{}, fmt.Errorf("store: oauth grant by refresh token: %w", ErrNotFound)
	case err != nil:
		return OAuthGrant{}, fmt.Errorf("store: oauth grant by refresh token: %w", err)
	}
	return g, nil
}

// prefixed qualifies each of the comma-separated columns with p.
func prefixed(p, columns string) string {
	cols := strings.Split(columns, ", ")
	for i, c := range cols {
		cols[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

func (s *sqlStore) RotateOAuthRefresh(ctx context.Context, oldHash, newHash string, now time.Time, update func(*OAuthGrant) error) (OAuthGrant, error) {
	if err := checkOAuthID("new refresh token hash", newHash); err != nil {
		return OAuthGrant{}, fmt.Errorf("store: rotate oauth refresh token: %w", err)
	}
	if newHash == oldHash {
		return OAuthGrant{}, fmt.Errorf("store: rotate oauth refresh token: the new hash is the old one")
	}
	var (
		out      OAuthGrant
		replayed bool
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		replayed = false
		var grantID string
		err := tx.QueryRowContext(ctx, "SELECT grant_id FROM oauth_refresh_tokens WHERE hash = $1", oldHash).Scan(&grantID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return fmt.Errorf("find refresh token: %w", err)
		}
		// The grant's row first (see the lock order above); a concurrent
		// rotation of the same token waits here for the first to end.
		g, err := getGrant(ctx, tx, grantID, s.forUpdate())
		if err != nil {
			return fmt.Errorf("grant %q: %w", grantID, err)
		}
		res, err := tx.ExecContext(ctx, "UPDATE oauth_refresh_tokens SET used_us = $2 WHERE hash = $1 AND used_us = 0",
			oldHash, max(now.UnixMicro(), 1))
		if err != nil {
			return fmt.Errorf("retire refresh token: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("retire refresh token: %w", err)
		} else if n == 0 {
			// A former token: whoever presents it, the family is no
			// longer to be trusted.
			replayed = true
			if err := revokeGrant(ctx, tx, grantID, RevokedRefreshReuse, now); err != nil {
				return err
			}
			out, err = getGrant(ctx, tx, grantID, "")
			return err
		}
		if !g.Active(now) {
			return fmt.Errorf("grant %q revoked or expired: %w", grantID, ErrNotFound)
		}
		if update != nil {
			if err := update(&g); err != nil {
				return err
			}
		}
		if err := checkJSON("claims", g.Claims); err != nil {
			return err
		}
		if err := checkText(g.Groups...); err != nil {
			return err
		}
		if g.ExpiresAt.IsZero() {
			return errors.New("update removed the grant's expiry")
		}
		groups, err := encodeList(g.Groups)
		if err != nil {
			return err
		}
		g.UpdatedAt = now.UTC().Truncate(time.Microsecond)
		if _, err := tx.ExecContext(ctx, "UPDATE oauth_grants SET groups_json = $2, claims = $3, upstream = $4, expires_us = $5, updated_us = $6"+
			" WHERE id = $1", grantID, groups, string(g.Claims), orNil(g.Upstream), g.ExpiresAt.UnixMicro(), g.UpdatedAt.UnixMicro()); err != nil {
			return fmt.Errorf("write grant: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO oauth_refresh_tokens (hash, grant_id, created_us) VALUES ($1, $2, $3)",
			newHash, grantID, now.UnixMicro()); err != nil {
			return fmt.Errorf("new refresh token: %w", err)
		}
		// What update changed and the store does not keep is not returned.
		out, err = getGrant(ctx, tx, grantID, "")
		return err
	})
	switch {
	case err != nil:
		return OAuthGrant{}, fmt.Errorf("store: rotate oauth refresh token: %w", err)
	case replayed:
		return out, fmt.Errorf("store: rotate oauth refresh token: a former token of grant %q, which is revoked: %w", out.ID, ErrReplayed)
	}
	return out, nil
}

// revokeGrant revokes an active grant and deletes its unused codes; a
// revoked one keeps its first revocation.
func revokeGrant(ctx context.Context, tx *sql.Tx, id, reason string, now time.Time) error {
	at := max(now.UnixMicro(), 1)
	if _, err := tx.ExecContext(ctx, "UPDATE oauth_grants SET revoked_us = $2, revoked_reason = $3, updated_us = $2"+
		" WHERE id = $1 AND revoked_us = 0", id, at, reason); err != nil {
		return fmt.Errorf("revoke grant %q: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM oauth_codes WHERE grant_id = $1 AND used_us = 0", id); err != nil {
		return fmt.Errorf("delete codes of grant %q: %w", id, err)
	}
	return nil
}

func (s *sqlStore) RevokeOAuthGrant(ctx context.Context, id, reason string, now time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM oauth_grants WHERE id = $1", id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return revokeGrant(ctx, tx, id, reason, now)
	})
	if err != nil {
		return fmt.Errorf("store: revoke oauth grant %q: %w", id, err)
	}
	return nil
}

func (s *sqlStore) ListOAuthGrants(ctx context.Context, f OAuthGrantFilter) ([]OAuthGrant, error) {
	var (
		where []string
		args  []any
	)
	if f.ClientID != "" {
		args = append(args, f.ClientID)
		where = append(where, fmt.Sprintf("client_id = $%d", len(args)))
	}
	if f.Subject != "" {
		args = append(args, f.Subject)
		where = append(where, fmt.Sprintf("subject = $%d", len(args)))
	}
	stmt := "SELECT " + grantListColumns + " FROM oauth_grants"
	if len(where) > 0 {
		stmt += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.db.QueryContext(ctx, stmt+" ORDER BY created_us DESC, id DESC", args...)
	if err != nil {
		return nil, fmt.Errorf("store: list oauth grants: %w", err)
	}
	defer rows.Close()
	var out []OAuthGrant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list oauth grants: %w", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list oauth grants: %w", err)
	}
	return out, nil
}

// Consents.

const consentColumns = "id, client_id, subject, created_us, expires_us"

func scanConsent(sc interface{ Scan(...any) error }) (OAuthConsent, error) {
	var (
		c                OAuthConsent
		created, expires int64
	)
	if err := sc.Scan(&c.ID, &c.ClientID, &c.Subject, &created, &expires); err != nil {
		return c, err
	}
	c.CreatedAt, c.ExpiresAt = timeOf(created), timeOf(expires)
	return c, nil
}

func (s *sqlStore) PutOAuthConsent(ctx context.Context, c OAuthConsent) error {
	if err := checkOAuthID("consent id", c.ID); err != nil {
		return fmt.Errorf("store: put oauth consent: %w", err)
	}
	if err := checkOAuthID("client id", c.ClientID); err != nil {
		return fmt.Errorf("store: put oauth consent %q: %w", c.ID, err)
	}
	if err := checkText(c.Subject); err != nil {
		return fmt.Errorf("store: put oauth consent %q: %w", c.ID, err)
	}
	if c.ExpiresAt.IsZero() {
		return fmt.Errorf("store: put oauth consent %q: no expiry", c.ID)
	}
	_, err := s.db.ExecContext(ctx, "INSERT INTO oauth_consents ("+consentColumns+") VALUES ($1, $2, $3, $4, $5)"+
		" ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id, subject = excluded.subject,"+
		" created_us = excluded.created_us, expires_us = excluded.expires_us",
		c.ID, c.ClientID, c.Subject, orNow(c.CreatedAt).UnixMicro(), c.ExpiresAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("store: put oauth consent %q: %w", c.ID, err)
	}
	return nil
}

func (s *sqlStore) GetOAuthConsent(ctx context.Context, id string, now time.Time) (OAuthConsent, error) {
	c, err := scanConsent(s.db.QueryRowContext(ctx, "SELECT "+consentColumns+" FROM oauth_consents WHERE id = $1", id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return OAuthConsent{}, fmt.Errorf("store: oauth consent %q: %w", id, ErrNotFound)
	case err != nil:
		return OAuthConsent{}, fmt.Errorf("store: get oauth consent %q: %w", id, err)
	case !c.ExpiresAt.After(now):
		return OAuthConsent{}, fmt.Errorf("store: oauth consent %q: expired: %w", id, ErrNotFound)
	}
	return c, nil
}

func (s *sqlStore) ListOAuthConsents(ctx context.Context) ([]OAuthConsent, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+consentColumns+" FROM oauth_consents ORDER BY created_us DESC, id")
	if err != nil {
		return nil, fmt.Errorf("store: list oauth consents: %w", err)
	}
	defer rows.Close()
	var out []OAuthConsent
	for rows.Next() {
		c, err := scanConsent(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list oauth consents: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list oauth consents: %w", err)
	}
	return out, nil
}

func (s *sqlStore) DeleteOAuthConsent(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, "DELETE FROM oauth_consents WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("store: delete oauth consent %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: delete oauth consent %q: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("store: oauth consent %q: %w", id, ErrNotFound)
	}
	return nil
}

// purgeChunk ids per DELETE ... IN (...), far below either dialect's
// bound-parameter limit.
const purgeChunk = 500

func (s *sqlStore) PurgeOAuth(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		total = 0
		exec := func(what, stmt string, args ...any) error {
			res, err := tx.ExecContext(ctx, stmt, args...)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			total += n
			return nil
		}
		nowUS := now.UnixMicro()
		rows, err := tx.QueryContext(ctx, "DELETE FROM oauth_grants WHERE (expires_us > 0 AND expires_us <= $1)"+
			" OR (revoked_us > 0 AND revoked_us <= $2) RETURNING id", nowUS, now.Add(-revokedGrantRetention).UnixMicro())
		if err != nil {
			return fmt.Errorf("grants: %w", err)
		}
		var gone []any
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				_ = rows.Close()
				return fmt.Errorf("grants: %w", err)
			}
			gone = append(gone, id)
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("grants: %w", err)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("grants: %w", err)
		}
		total += int64(len(gone))
		for start := 0; start < len(gone); start += purgeChunk {
			chunk := gone[start:min(start+purgeChunk, len(gone))]
			marks := make([]string, len(chunk))
			for i := range chunk {
				marks[i] = s.d.param(i + 1)
			}
			in := " WHERE grant_id IN (" + strings.Join(marks, ", ") + ")"
			if err := exec("refresh tokens", "DELETE FROM oauth_refresh_tokens"+in, chunk...); err != nil {
				return err
			}
			if err := exec("codes of grants", "DELETE FROM oauth_codes"+in, chunk...); err != nil {
				return err
			}
		}
		if err := exec("codes", "DELETE FROM oauth_codes WHERE (used_us = 0 AND expires_us <= $1) OR (used_us > 0 AND used_us <= $2)",
			nowUS, now.Add(-usedCodeRetention).UnixMicro()); err != nil {
			return err
		}
		if err := exec("pending requests", "DELETE FROM oauth_pending WHERE expires_us <= $1", nowUS); err != nil {
			return err
		}
		if err := exec("consents", "DELETE FROM oauth_consents WHERE expires_us <= $1", nowUS); err != nil {
			return err
		}
		return exec("clients", "DELETE FROM oauth_clients WHERE expires_us > 0 AND expires_us <= $1"+
			" AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = oauth_clients.id AND g.revoked_us = 0 AND g.expires_us > $1)", nowUS)
	})
	if err != nil {
		return 0, fmt.Errorf("store: purge oauth: %w", err)
	}
	return total, nil
}
