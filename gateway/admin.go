package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agnivade/levenshtein"
	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/oauthserver"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/store"
	"github.com/mcpgw/mcpgw/internal/store/configjson"
	"github.com/mcpgw/mcpgw/internal/telemetry"
)

// The admin API manages agents and backends while the gateway runs and pages
// through the audit trail:
//
//	GET    /admin/v1/agents            GET    /admin/v1/backends
//	GET    /admin/v1/agents/{name}     GET    /admin/v1/backends/{name}
//	PUT    /admin/v1/agents/{name}     PUT    /admin/v1/backends/{name}
//	PATCH  /admin/v1/agents/{name}     PATCH  /admin/v1/backends/{name}
//	DELETE /admin/v1/agents/{name}     DELETE /admin/v1/backends/{name}
//	GET    /admin/v1/audit?kind=&subject=&agent=&backend=&decision=&since=&until=&limit=&cursor=&include=input
//	POST   /admin/v1/policy/replay?since=&until=&backend=&agent=&subject=&tool=&baseline=active (body: candidate bundle)
//
// {name} is the entry's key in config.yaml's agents: or backends: map
// (letters, digits, '.', '_', '-', starting with a letter or digit). An
// agent's agent_id, the X-Agent-ID value, is a field of the body and
// defaults to the name. A PUT body is the entry as config.yaml writes it
// (url, paths, auth_method, ...; agent_id, client_id, scopes, ...); it may
// repeat the name as "name", which must then match the URL.
//
// Every call carries the same bearer token as MCP calls and is decided by
// data.mcp.admin.allow; there is no other credential. Writes are validated
// like the config file, stored with their audit record, and applied to the
// routing table before the response is sent.

const adminPrefix = "/admin/v1"

// maxObjectName is the longest agent or backend name the store accepts.
const maxObjectName = 200

// Admin actions, as data.mcp.admin.allow sees them. A PUT is "write"
// whether it creates or updates: the decision is made before the store is
// read, so a caller who may not write learns nothing about which names
// exist. The change record still says create or update.
const (
	actionList   = "list"
	actionGet    = "get"
	actionWrite  = "write"
	actionDelete = "delete"
	// actionRevoke ends an OAuth grant (adminoauth.go).
	actionRevoke = "revoke"
)

type adminAPI struct {
	s   *Server
	log *slog.Logger
	// oauth is the authorization server whose state /oauth shows; nil
	// when oauth is off.
	oauth *oauthserver.Server
	// mu makes each write of this process one step: read the store,
	// validate the whole candidate topology, write, reload. Without it two
	// concurrent writes could each pass validation and together break the
	// topology (an agent granted a backend that is being deleted). The
	// store's admin lock extends this to writers in other replicas.
	mu sync.Mutex
}

// resource is one collection of the admin API: the store calls and config
// rules in which agents and backends differ.
type resource[T any] struct {
	api *adminAPI
	// plural is the URL segment, the policy's admin.kind and the config
	// key: "agents" or "backends".
	plural string
	name   func(T) string
	list   func(context.Context) ([]store.Entry[T], error)
	get    func(context.Context, string) (store.Entry[T], error)
	put    func(context.Context, T, store.ChangeMeta) (store.Change[T], error)
	remove func(context.Context, string, store.ChangeMeta) (store.Change[T], error)
	redact func(T) T
	// merge completes a decoded body with the stored secrets it keeps and
	// refuses secret references; old is nil on create.
	merge func(path string, sent map[string]json.RawMessage, v, old *T) []string
	// guard, when set, refuses an update v of old that would silently drop
	// what the entry is bound by (an agent's client_id); unbind is the
	// caller's explicit consent (?unbind=true).
	guard func(path string, sent map[string]json.RawMessage, v, old *T, unbind bool) []string
	// target, when set, reads where a PUT body points, for the policy
	// (input.admin.target).
	target func(ctx context.Context, body []byte) *policy.AdminTarget
	// entries is this collection in a candidate config (cand.Agents or
	// cand.Backends), read again after validation normalizes it.
	entries func(cand *config.Config) map[string]T
	// conflicts lists how entry name of a normalized candidate clashes
	// with the others (or, deleted, who still depends on it): 409.
	conflicts func(cand *config.Config, name string) []string
}

// lockWrites makes one admin write a single step across this process and
// every replica on the same database. Another replica may have written
// while we waited, so the topology is reloaded first: validation then sees
// what the store holds now.
func (a *adminAPI) lockWrites(ctx context.Context) (unlock func(), err error) {
	a.mu.Lock()
	release, err := a.s.Store.LockAdmin(ctx)
	if err != nil {
		a.mu.Unlock()
		return nil, err
	}
	if err := a.s.Reload(ctx); err != nil {
		a.log.Warn("admin: apply store changes before a write", "err", err)
	}
	return func() {
		release()
		a.mu.Unlock()
	}, nil
}

func (s *Server) mountAdmin(log *slog.Logger) {
	a := &adminAPI{s: s, log: log.With("component", "admin")}
	agents := &resource[config.Agent]{
		api: a, plural: "agents",
		name:      func(v config.Agent) string { return v.Name },
		list:      s.Store.ListAgents,
		get:       s.Store.GetAgent,
		put:       s.Store.PutAgent,
		remove:    s.Store.DeleteAgent,
		redact:    audit.RedactAgent,
		merge:     mergeAgent,
		guard:     guardAgent,
		entries:   func(cand *config.Config) map[string]config.Agent { return cand.Agents },
		conflicts: agentConflicts,
	}
	backends := &resource[config.Backend]{
		api: a, plural: "backends",
		name:      func(v config.Backend) string { return v.Name },
		list:      s.Store.ListBackends,
		get:       s.Store.GetBackend,
		put:       s.Store.PutBackend,
		remove:    s.Store.DeleteBackend,
		redact:    audit.RedactBackend,
		merge:     mergeBackend,
		target:    backendTarget,
		entries:   func(cand *config.Config) map[string]config.Backend { return cand.Backends },
		conflicts: backendConflicts,
	}
	r := s.Gateway.App().Group(adminPrefix)
	mountResource(r, agents)
	mountResource(r, backends)
	r.Get("/audit", a.handleAudit)
	r.All("/audit", a.methodNotAllowed("GET"))
	r.Post("/policy/replay", a.handleReplay)
	r.All("/policy/replay", a.methodNotAllowed("POST"))
	a.mountIntegrity(r)
	a.mountOAuth(r, s.OAuth)
	// Without these, unknown admin paths would fall through to the MCP
	// route and be answered as backend paths.
	r.All("/", a.notFound)
	r.All("/*", a.notFound)

	compat := s.Gateway.App().Group(compatAdminPrefix)
	mountCompatResource(compat, agents)
	mountCompatResource(compat, backends)
	compat.All("/", a.compatNotFound)
	compat.All("/*", a.compatNotFound)
}

func mountResource[T any](r fiber.Router, res *resource[T]) {
	base := "/" + res.plural
	r.Get(base, res.handleList)
	r.All(base, res.api.methodNotAllowed("GET"))
	r.Get(base+"/:name", res.handleGet)
	r.Put(base+"/:name", res.handlePut)
	r.Patch(base+"/:name", res.handlePatch)
	r.Delete(base+"/:name", res.handleDelete)
	r.All(base+"/:name", res.api.methodNotAllowed("GET, PUT, PATCH, DELETE"))
}

// adminEntry is how the API shows a stored agent or backend. Value is in the
// config file's shape, secrets redacted, and is what a PUT takes back.
type adminEntry struct {
	Name      string          `json:"name"`
	Source    store.Source    `json:"source"`
	Version   int64           `json:"version"`
	UpdatedAt time.Time       `json:"updated_at"`
	UpdatedBy string          `json:"updated_by,omitempty"`
	Value     json.RawMessage `json:"value"`
}

func (r *resource[T]) entry(e store.Entry[T]) (adminEntry, error) {
	value, err := configjson.Marshal(r.redact(e.Value))
	if err != nil {
		return adminEntry{}, fmt.Errorf("encode %s.%s: %w", r.plural, r.name(e.Value), err)
	}
	return adminEntry{Name: r.name(e.Value), Source: e.Source, Version: e.Version, UpdatedAt: e.UpdatedAt,
		UpdatedBy: e.UpdatedBy, Value: value}, nil
}

func (r *resource[T]) handleList(c *fiber.Ctx) error {
	return r.answerList(c, func(e store.Entry[T]) (any, error) { return r.entry(e) })
}

// answerList answers a list call of either API: authenticated, authorized
// as "list", every stored entry shown by view under the collection's name.
func (r *resource[T]) answerList(c *fiber.Ctx, view func(store.Entry[T]) (any, error)) error {
	p, ok := r.api.authenticate(c)
	if !ok {
		return nil
	}
	if _, ok := r.api.authorize(c, p, actionList, r.plural, "", nil); !ok {
		return nil
	}
	entries, err := r.list(c.UserContext())
	if err != nil {
		return r.api.internal(c, "list "+r.plural, err)
	}
	out := make([]any, 0, len(entries))
	for _, e := range entries {
		v, err := view(e)
		if err != nil {
			return r.api.internal(c, "list "+r.plural, err)
		}
		out = append(out, v)
	}
	return adminJSON(c, fiber.StatusOK, fiber.Map{r.plural: out})
}

func (r *resource[T]) handleGet(c *fiber.Ctx) error {
	p, ok := r.api.authenticate(c)
	if !ok {
		return nil
	}
	name := strings.Clone(c.Params("name"))
	if _, ok := r.api.authorize(c, p, actionGet, r.plural, name, nil); !ok {
		return nil
	}
	e, err := r.get(c.UserContext(), name)
	if errors.Is(err, store.ErrNotFound) {
		return r.notFound(c, name)
	}
	if err != nil {
		return r.api.internal(c, "get "+r.plural+"."+name, err)
	}
	ae, err := r.entry(e)
	if err != nil {
		return r.api.internal(c, "get "+r.plural+"."+name, err)
	}
	return adminJSON(c, fiber.StatusOK, ae)
}

// beginWrite authenticates and authorizes a write to the entry the URL
// names, then takes the admin write lock; ok is false when it has already
// answered (401, 403, 415, 500).
func (r *resource[T]) beginWrite(c *fiber.Ctx, action string) (p *identity.Principal, name string, d policy.Decision, unlock func(), ok bool) {
	if p, ok = r.api.authenticate(c); !ok {
		return nil, "", d, nil, false
	}
	name = strings.Clone(c.Params("name"))
	if d, unlock, ok = r.authorizeWrite(c, p, action, name); !ok {
		return nil, "", d, nil, false
	}
	return p, name, d, unlock, true
}

// authorizeWrite authorizes a write by p to entry name and takes the admin
// write lock. Authorization comes first and depends only on the request
// (action, kind, name, target), never on the store: a caller who may not
// write gets the same answer whether the name exists or not, and cannot
// hold the lock or make this replica reload.
func (r *resource[T]) authorizeWrite(c *fiber.Ctx, p *identity.Principal, action, name string) (d policy.Decision, unlock func(), ok bool) {
	var target *policy.AdminTarget
	isJSON := jsonBody(c)
	if action == actionWrite && r.target != nil && isJSON {
		target = r.target(c.UserContext(), c.Body())
	}
	if d, ok = r.api.authorize(c, p, action, r.plural, name, target); !ok {
		return d, nil, false
	}
	if action == actionWrite && !isJSON {
		want := "application/json"
		if c.Method() == fiber.MethodPatch {
			want += " or " + mimeMergePatch
		}
		_ = adminError(c, fiber.StatusUnsupportedMediaType, "invalid_request", "Content-Type must be "+want, nil)
		return d, nil, false
	}
	unlock, err := r.api.lockWrites(c.UserContext())
	if err != nil {
		_ = r.api.internal(c, "lock "+r.plural+"."+name, err)
		return d, nil, false
	}
	return d, unlock, true
}

// mimeMergePatch is the media type of an RFC 7396 JSON merge patch.
const mimeMergePatch = "application/merge-patch+json"

// jsonBody reports a JSON request body: application/json, or a merge patch
// on PATCH.
func jsonBody(c *fiber.Ctx) bool {
	mt := mediaType(c.Get(fiber.HeaderContentType))
	return mt == fiber.MIMEApplicationJSON || (c.Method() == fiber.MethodPatch && mt == mimeMergePatch)
}

// handlePut creates or replaces an entry. The body replaces the stored entry
// field by field, except that secrets are write-only and so a GET-modify-PUT
// round trip must not wipe them:
//
//   - an agent's client_secret and private_key: omitted, or sent as the
//     redaction marker "[REDACTED]", keep the stored value; "" or null
//     clears it; any other value replaces it.
//   - a backend's auth_config: omitted entirely, it is kept as stored.
//     Sent, it replaces the stored one key by key (keys left out are
//     dropped, since which keys matter depends on auth_method and a stale
//     api_key would win over a new key), except that a value equal to what
//     GET shows for the stored value at the same place ("[REDACTED]", or a
//     URL with its password or token hidden) keeps the stored value. The
//     same holds for the backend's url.
//
// "[REDACTED]" where nothing is stored is refused rather than stored as a
// literal credential; so is a kept secret when the backend's destination
// (url, or an auth_config endpoint, server or issuer) changes, since the
// stored secret would then be sent somewhere its owner never chose. A PUT
// that would leave out an agent's identity (see guard) is refused too.
func (r *resource[T]) handlePut(c *fiber.Ctx) error {
	w, ok := r.beginChange(c, false)
	if !ok {
		return nil
	}
	defer w.unlock()
	ae, created, answered := r.save(c, w.p, w.d, w.name, c.Body(), w.old)
	if answered {
		return nil
	}
	return r.answerSaved(c, ae, created)
}

// change is an authorized write to the entry the URL names, holding the
// admin write lock until unlock: who writes, on what decision, and what is
// stored now (old, nil when nothing is).
type change[T any] struct {
	p      *identity.Principal
	name   string
	d      policy.Decision
	old    *T
	unlock func()
}

// beginChange is beginWrite followed by reading the stored entry; with
// mustExist a missing one is answered 404. ok is false when it has answered.
func (r *resource[T]) beginChange(c *fiber.Ctx, mustExist bool) (w change[T], ok bool) {
	if w.p, w.name, w.d, w.unlock, ok = r.beginWrite(c, actionWrite); !ok {
		return w, false
	}
	old, err := r.load(c.UserContext(), w.name)
	switch {
	case err != nil:
		_ = r.api.internal(c, "get "+r.plural+"."+w.name, err)
	case old == nil && mustExist:
		_ = r.notFound(c, w.name)
	default:
		w.old = old
		return w, true
	}
	w.unlock()
	return w, false
}

// answerSaved answers a PUT or PATCH with the stored entry.
func (r *resource[T]) answerSaved(c *fiber.Ctx, ae adminEntry, created bool) error {
	if !created {
		return adminJSON(c, fiber.StatusOK, ae)
	}
	c.Location(adminPrefix + "/" + r.plural + "/" + ae.Name)
	return adminJSON(c, fiber.StatusCreated, ae)
}

// load is the stored entry name, nil when there is none.
func (r *resource[T]) load(ctx context.Context, name string) (*T, error) {
	e, err := r.get(ctx, name)
	switch {
	case err == nil:
		return &e.Value, nil
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	}
	return nil, err
}

// save validates body, an entry in config.yaml's shape, as the new value of
// entry name (old is what is stored, nil on create) against the whole
// topology, stores it with its audit record and swaps the routing table.
// Every write of the admin API, /admin/v1 and the Okta MCP adapter's
// routes, ends here, so all are checked and audited alike. ok is false when
// answered is true when it has refused the write (400, 409, 500);
// otherwise the caller answers with ae.
func (r *resource[T]) save(c *fiber.Ctx, p *identity.Principal, d policy.Decision, name string, body []byte, old *T) (ae adminEntry, created, answered bool) {
	ctx := c.UserContext()
	path := r.plural + "." + name
	if len(name) > maxObjectName {
		return ae, false, refused(invalid(c, []string{fmt.Sprintf("%s: name is longer than %d bytes", r.plural, maxObjectName)}))
	}
	unbind, err := unbindParam(c)
	if err != nil {
		return ae, false, refused(invalid(c, []string{err.Error()}))
	}
	var v T
	sent, problems := decodeBody(path, name, body, &v)
	if sent != nil {
		problems = append(problems, r.merge(path, sent, &v, old)...)
		if r.guard != nil && old != nil {
			problems = append(problems, r.guard(path, sent, &v, old, unbind)...)
		}
	}
	if len(problems) > 0 {
		return ae, false, refused(invalid(c, problems))
	}

	cand, err := r.api.candidate(ctx)
	if err != nil {
		return ae, false, refused(r.api.internal(c, "read topology", err))
	}
	r.entries(cand)[name] = v
	problems = topologyProblems(cand)
	if conflicts := r.conflicts(cand, name); len(conflicts) > 0 {
		return ae, false, refused(adminError(c, fiber.StatusConflict, "conflict", strings.Join(conflicts, "; "), conflicts))
	}
	if len(problems) == 0 {
		// Validate checks shapes; building the routing table also builds
		// each backend's credential injector and reads each agent's key,
		// as a reload will.
		if _, err := buildTopology(cand.Backends, cand.Agents, r.api.s.Gateway.opts.Injectors); err != nil {
			for _, e := range unjoin(err) {
				problems = append(problems, e.Error())
			}
		}
	}
	if len(problems) > 0 {
		return ae, false, refused(invalid(c, problems))
	}

	// Stored as validated: normalized like a loaded config file (default
	// path /<name>, auth_method lower case, static-key as pre-shared-key).
	v = r.entries(cand)[name]
	ch, err := r.put(ctx, v, r.api.changeMeta(c, p, d))
	if err != nil {
		return ae, false, refused(r.api.internal(c, "put "+path, err))
	}
	if !r.api.apply(c, ch.Audit) {
		return ae, false, true
	}
	e, err := r.get(ctx, name)
	if err == nil {
		ae, err = r.entry(e)
	}
	if err != nil {
		return ae, false, refused(r.api.internal(c, "get "+path, err))
	}
	return ae, ch.Before == nil, false
}

// refused marks a request as answered with a refusal. The error of writing
// the refusal is dropped: the client is gone and nothing more can be sent.
func refused(error) bool { return true }

// unbindParam reads ?unbind=true, the explicit consent a write needs to
// remove an agent's client binding.
func unbindParam(c *fiber.Ctx) (bool, error) {
	switch v := c.Query("unbind"); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, errors.New("query parameter unbind: want true or false")
}

func (r *resource[T]) handleDelete(c *fiber.Ctx) error {
	return r.answerDelete(c, func(string) error { return c.SendStatus(fiber.StatusNoContent) })
}

// answerDelete deletes the entry the URL names for a delete call of either
// API and, once it is gone, answers with done.
func (r *resource[T]) answerDelete(c *fiber.Ctx, done func(name string) error) error {
	p, name, d, unlock, ok := r.beginWrite(c, actionDelete)
	if !ok {
		return nil
	}
	defer unlock()
	if r.drop(c, p, d, name) {
		return nil
	}
	return done(name)
}

// drop deletes entry name with its audit record and swaps the routing
// table; answered is true when it has refused (404, 409, 500).
func (r *resource[T]) drop(c *fiber.Ctx, p *identity.Principal, d policy.Decision, name string) (answered bool) {
	ctx := c.UserContext()
	if _, err := r.get(ctx, name); errors.Is(err, store.ErrNotFound) {
		return refused(r.notFound(c, name))
	} else if err != nil {
		return refused(r.api.internal(c, "get "+r.plural+"."+name, err))
	}
	cand, err := r.api.candidate(ctx)
	if err != nil {
		return refused(r.api.internal(c, "read topology", err))
	}
	delete(r.entries(cand), name)
	if conflicts := r.conflicts(cand, name); len(conflicts) > 0 {
		return refused(adminError(c, fiber.StatusConflict, "conflict", strings.Join(conflicts, "; "), conflicts))
	}
	ch, err := r.remove(ctx, name, r.api.changeMeta(c, p, d))
	if errors.Is(err, store.ErrNotFound) {
		return refused(r.notFound(c, name))
	}
	if err != nil {
		return refused(r.api.internal(c, "delete "+r.plural+"."+name, err))
	}
	return !r.api.apply(c, ch.Audit)
}

func (r *resource[T]) notFound(c *fiber.Ctx, name string) error {
	return adminError(c, fiber.StatusNotFound, "not_found", fmt.Sprintf("%s.%s: no such entry", r.plural, name), nil)
}

// candidate is the store's current topology as a config, for validating a
// change against everything else before it is written.
func (a *adminAPI) candidate(ctx context.Context) (*config.Config, error) {
	backends, agents, err := loadTopology(ctx, a.s.Store)
	if err != nil {
		return nil, err
	}
	// The trusted issuers come along so that an agent's issuer is checked
	// as in the config file (a client_id needs one when several are
	// trusted). Cloned: Validate normalizes in place.
	issuers := slices.Clone(a.s.Gateway.opts.Config.Identity.Issuers)
	return &config.Config{Backends: backends, Agents: agents, Identity: config.Identity{Issuers: issuers}}, nil
}

// topologyProblems validates a candidate's agents and backends exactly as
// the config file's are validated, normalizing them in place. Validate
// checks the whole file; a candidate holds only agents and backends, so what
// it says about the other sections is not about this change.
func topologyProblems(cand *config.Config) []string {
	err := cand.Validate()
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range unjoin(err) {
		if msg := e.Error(); strings.HasPrefix(msg, "backends.") || strings.HasPrefix(msg, "agents.") {
			out = append(out, msg)
		}
	}
	return out
}

func agentConflicts(cand *config.Config, name string) []string {
	a, ok := cand.Agents[name]
	if !ok {
		return nil
	}
	var out []string
	for _, other := range slices.Sorted(maps.Keys(cand.Agents)) {
		if other != name && cand.Agents[other].ID() == a.ID() {
			out = append(out, fmt.Sprintf("agents.%s.agent_id: %q is already the id of agents.%s", name, a.ID(), other))
		}
	}
	return out
}

func backendConflicts(cand *config.Config, name string) []string {
	var out []string
	b, ok := cand.Backends[name]
	if !ok {
		for _, an := range slices.Sorted(maps.Keys(cand.Agents)) {
			for i, bn := range cand.Agents[an].BackendAccess {
				if bn == name {
					out = append(out, fmt.Sprintf("backends.%s: still granted by agents.%s.backend_access[%d]; remove the grant first", name, an, i))
				}
			}
		}
		return out
	}
	for i, p := range b.Paths {
		cp := canonicalPath(p)
		if reserved, ok := reservedRoute(cp); ok {
			out = append(out, fmt.Sprintf("backends.%s.paths[%d]: %q is the gateway's own route %s", name, i, p, reserved))
		}
		for _, other := range slices.Sorted(maps.Keys(cand.Backends)) {
			if other == name {
				continue
			}
			for j, op := range cand.Backends[other].Paths {
				if canonicalPath(op) == cp {
					out = append(out, fmt.Sprintf("backends.%s.paths[%d]: %q is already routed to backends.%s (paths[%d])", name, i, p, other, j))
				}
			}
		}
	}
	return out
}

// decodeBody reads a PUT body, a JSON object keyed like a config.yaml entry,
// into v. It returns the fields as sent, so that secret handling can tell an
// omitted field from an emptied one, and one problem per bad field.
func decodeBody(path, name string, body []byte, v any) (map[string]json.RawMessage, []string) {
	var sent map[string]json.RawMessage
	if err := json.Unmarshal(body, &sent); err != nil || sent == nil {
		kind, _, _ := strings.Cut(path, ".")
		desc := "must be a JSON object shaped like an entry of " + kind + ": in config.yaml"
		var se *json.SyntaxError
		if errors.As(err, &se) {
			desc = fmt.Sprintf("invalid JSON at byte %d", se.Offset)
		}
		return nil, []string{"request body: " + desc}
	}
	known := configKeys(reflect.TypeOf(v).Elem())
	var problems []string
	for _, k := range slices.Sorted(maps.Keys(sent)) {
		if k == "name" {
			var s string
			if json.Unmarshal(sent[k], &s) != nil || s != name {
				problems = append(problems, fmt.Sprintf("%s.name: must be %q, the name in the URL", path, name))
			}
			continue
		}
		if !slices.Contains(known, k) {
			problems = append(problems, unknownField(path, k, known))
			continue
		}
		// One field at a time, so that an error names its field.
		one, err := json.Marshal(map[string]json.RawMessage{k: sent[k]})
		if err == nil {
			err = configjson.Unmarshal(one, v)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s.%s: %s", path, k, typeProblem(err)))
		}
	}
	return sent, problems
}

// configKeys lists the keys of a config struct as configjson names them
// (koanf tags; untagged fields by their lower-cased name), so that a field
// added to config.Agent or config.Backend is accepted here without an edit.
func configKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		switch key {
		case "-":
			continue
		case "":
			key = strings.ToLower(f.Name)
		}
		keys = append(keys, key)
	}
	return keys
}

func unknownField(path, key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := levenshtein.ComputeDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("%s.%s: unknown field (did you mean %q?)", path, key, best)
	}
	return fmt.Sprintf("%s.%s: unknown field (want one of %s)", path, key, strings.Join(known, ", "))
}

func typeProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("want %s, got a JSON %s", jsonTypeName(te.Type), te.Value)
	}
	return "invalid value"
}

func jsonTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(jsonTypeName(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

func mergeAgent(path string, sent map[string]json.RawMessage, v, old *config.Agent) []string {
	var stored config.Agent
	if old != nil {
		stored = *old
	}
	var problems []string
	for _, f := range []struct {
		key, fileKey  string
		value, file   *string
		stored, sFile string
	}{
		{"client_secret", "client_secret_file", &v.ClientSecret, &v.ClientSecretFile, stored.ClientSecret, stored.ClientSecretFile},
		{"private_key", "private_key_file", &v.PrivateKey, &v.PrivateKeyFile, stored.PrivateKey, stored.PrivateKeyFile},
	} {
		if _, present := sent[f.key]; !present {
			*f.value = f.stored
		} else if *f.value == audit.Redacted {
			if f.stored == "" {
				problems = append(problems, redactedWithoutSecret(path+"."+f.key))
			} else {
				*f.value = f.stored
			}
		}
		if isEnvReference(*f.value) && *f.value != f.stored {
			problems = append(problems, envReferenceRefused(path+"."+f.key))
		}
		if *f.file != "" && *f.file != f.sFile {
			problems = append(problems, fileRefused(path+"."+f.fileKey, f.key))
		}
	}
	return problems
}

func mergeBackend(path string, sent map[string]json.RawMessage, v, old *config.Backend) []string {
	var problems []string
	var stored, shown config.Backend
	if old != nil {
		stored, shown = *old, audit.RedactBackend(*old)
	}
	if v.URL == shown.URL && shown.URL != stored.URL {
		v.URL = stored.URL
	}
	// kept lists the stored secrets this write keeps without sending them.
	var kept []string
	if _, present := sent["auth_config"]; !present {
		v.AuthConfig = stored.AuthConfig
		for _, k := range slices.Sorted(maps.Keys(stored.AuthConfig)) {
			if !reflect.DeepEqual(shown.AuthConfig[k], stored.AuthConfig[k]) {
				kept = append(kept, path+".auth_config."+k)
			}
		}
	} else {
		for _, k := range slices.Sorted(maps.Keys(v.AuthConfig)) {
			v.AuthConfig[k] = restoreSecrets(path+".auth_config."+k, v.AuthConfig[k], shown.AuthConfig[k], stored.AuthConfig[k], &problems, &kept)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(v.AuthConfig)) {
		refusedReferences(path+".auth_config."+k, k, v.AuthConfig[k], stored.AuthConfig[k], &problems)
	}
	// A kept secret goes where the stored one went, or not at all: it was
	// given for that destination. Whoever re-points the backend gives it
	// again, so the API never sends a secret it will not show to a place
	// of the caller's choosing.
	if old != nil && len(kept) > 0 {
		if changed := destinationChanges(v, &stored); len(changed) > 0 {
			for _, k := range kept {
				problems = append(problems, fmt.Sprintf("%s: the destination changed (%s); give the secret again", k, strings.Join(changed, ", ")))
			}
		}
	}
	return problems
}

// destinationKey matches the auth_config keys that say where requests (and
// with them secrets) go: URLs, endpoints, servers, issuers, hosts and the
// cross-app mode, which moves the token endpoint to one the backend names.
var destinationKey = regexp.MustCompile(`(?i)(^|_)(url|uri|endpoint|server|issuer|host|domain)$|^id_jag_mode$`)

// destinationChanges names the destination fields in which the merged
// write v differs from the stored backend: "url" and "auth_config.<key>"
// (at any depth).
func destinationChanges(v, stored *config.Backend) []string {
	var out []string
	if v.URL != stored.URL {
		out = append(out, "url")
	}
	return append(out, changedDestinations("auth_config", v.AuthConfig, stored.AuthConfig)...)
}

func changedDestinations(path string, sent, stored map[string]any) []string {
	keys := slices.Collect(maps.Keys(sent))
	for k := range stored {
		if _, ok := sent[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		a, b := sent[k], stored[k]
		if destinationKey.MatchString(k) {
			if !reflect.DeepEqual(a, b) {
				out = append(out, path+"."+k)
			}
			continue
		}
		am, aok := a.(map[string]any)
		bm, bok := b.(map[string]any)
		if aok && bok {
			out = append(out, changedDestinations(path+"."+k, am, bm)...)
		}
	}
	return out
}

// restoreSecrets returns the stored value where sent is what GET showed for
// it (the redacted form) and redaction had hidden something, and adds its
// path to kept.
func restoreSecrets(path string, sent, shown, stored any, problems, kept *[]string) any {
	switch s := sent.(type) {
	case string:
		if sh, ok := shown.(string); ok && s == sh && !reflect.DeepEqual(shown, stored) {
			*kept = append(*kept, path)
			return stored
		}
		if s == audit.Redacted {
			*problems = append(*problems, redactedWithoutSecret(path))
		}
	case map[string]any:
		shownMap, _ := shown.(map[string]any)
		storedMap, _ := stored.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(s)) {
			s[k] = restoreSecrets(path+"."+k, s[k], shownMap[k], storedMap[k], problems, kept)
		}
	case []any:
		shownList, _ := shown.([]any)
		storedList, _ := stored.([]any)
		for i := range s {
			var sh, st any
			if i < len(shownList) && i < len(storedList) {
				sh, st = shownList[i], storedList[i]
			}
			s[i] = restoreSecrets(fmt.Sprintf("%s[%d]", path, i), s[i], sh, st, problems, kept)
		}
	}
	return sent
}

// refusedReferences reports "${NAME}" values and *_file keys that are not
// already stored at the same place. The config file may use both, since
// whoever writes it already controls the gateway's environment and files.
// Through the API they would let a caller make the gateway read its own
// environment or files (the session key, a signing key) and send them as a
// credential to a backend URL of the caller's choosing.
func refusedReferences(path, key string, sent, stored any, problems *[]string) {
	switch s := sent.(type) {
	case string:
		if reflect.DeepEqual(sent, stored) {
			return
		}
		if strings.HasSuffix(key, "_file") && s != "" {
			*problems = append(*problems, fileRefused(path, strings.TrimSuffix(key, "_file")))
		} else if isEnvReference(s) {
			*problems = append(*problems, envReferenceRefused(path))
		}
	case map[string]any:
		storedMap, _ := stored.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(s)) {
			refusedReferences(path+"."+k, k, s[k], storedMap[k], problems)
		}
	case []any:
		storedList, _ := stored.([]any)
		for i, item := range s {
			var st any
			if i < len(storedList) {
				st = storedList[i]
			}
			refusedReferences(fmt.Sprintf("%s[%d]", path, i), key, item, st, problems)
		}
	}
}

// isEnvReference matches the values config.ResolveSecret replaces by an
// environment variable.
func isEnvReference(s string) bool { return strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}") }

func redactedWithoutSecret(path string) string {
	return path + ": " + audit.Redacted + " stands for a stored secret, but none is stored here; send the secret itself"
}

func envReferenceRefused(path string) string {
	return path + ": ${...} environment references are resolved only in the config file; send the secret itself"
}

func fileRefused(path, key string) string {
	return fmt.Sprintf("%s: files are read only for the config file; send the secret itself in %s", path, key)
}

// authenticate verifies the bearer token as the MCP route does. The
// challenge points at the gateway's own protected resource metadata: admin
// paths belong to no backend.
func (a *adminAPI) authenticate(c *fiber.Ctx) (*identity.Principal, bool) {
	g := a.s.Gateway
	if host := string(c.Request().Host()); !g.hostAllowed(host) {
		_ = writeOAuthError(c, fiber.StatusForbidden, "invalid_request", fmt.Sprintf("Host header %q is not one this gateway serves", host), "")
		return nil, false
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !g.originAllowed(origin) {
		_ = writeOAuthError(c, fiber.StatusForbidden, "invalid_request", fmt.Sprintf("Origin %q is not allowed (server.allowed_origins)", origin), "")
		return nil, false
	}
	meta := strings.TrimRight(g.server.PublicURL, "/") + "/.well-known/oauth-protected-resource"
	header := c.Get(fiber.HeaderAuthorization)
	if header == "" {
		c.Set(fiber.HeaderWWWAuthenticate, fmt.Sprintf(`Bearer resource_metadata=%q`, meta))
		_ = writeOAuthError(c, fiber.StatusUnauthorized, "invalid_request", "missing bearer token in Authorization header", "")
		return nil, false
	}
	token, ok := bearerToken(header)
	if !ok {
		g.challenge(c, meta, "Authorization header must be \"Bearer <token>\"")
		return nil, false
	}
	ctx, span := telemetry.StartSpan(c.UserContext(), g.opts.Tracer, telemetry.SpanIdentity)
	p, err := a.s.Verifier.Verify(ctx, strings.Clone(token))
	telemetry.EndSpan(span, err)
	if errors.Is(err, identity.ErrKeysUnavailable) {
		a.log.Warn("token keys unavailable", "err", err)
		c.Set(fiber.HeaderRetryAfter, "5")
		_ = writeOAuthError(c, fiber.StatusServiceUnavailable, "temporarily_unavailable", "the token issuer's signing keys could not be loaded; try again shortly", "")
		return nil, false
	}
	if err != nil {
		desc := "token verification failed"
		var ie *identity.Error
		if errors.As(err, &ie) && ie.Description != "" {
			desc = ie.Description
		}
		g.challenge(c, meta, desc)
		return nil, false
	}
	return p, true
}

// authorize asks data.mcp.admin.allow; a denial answers 403 with the
// decision id, which the audit trail's decision record carries too.
func (a *adminAPI) authorize(c *fiber.Ctx, p *identity.Principal, action, kind, name string, target *policy.AdminTarget) (policy.Decision, bool) {
	ctx, span := telemetry.StartSpan(c.UserContext(), a.s.Gateway.opts.Tracer, telemetry.SpanPolicy)
	defer telemetry.EndSpan(span, nil)
	d := a.s.Engine.DecideAdmin(ctx, &policy.AdminInput{
		Version: policy.InputVersion,
		Token: policy.TokenInput{
			Sub: p.Subject, Iss: p.Issuer, Aud: p.Audience, ClientID: p.ClientID,
			Scopes: p.Scopes, Groups: p.Groups, Claims: p.Claims, Via: p.Via,
		},
		// Cloned: the engine's decision record outlives the request buffers.
		HTTP:  policy.HTTPInput{Method: strings.Clone(c.Method()), Path: strings.Clone(c.Path()), RemoteAddr: strings.Clone(c.IP())},
		Admin: policy.AdminRequest{Action: action, Kind: kind, Name: name, Target: target},
	})
	if d.Allow {
		return d, true
	}
	desc := fmt.Sprintf("admin action %s on %s denied by policy", action, adminTarget(kind, name))
	if len(d.Reasons) > 0 {
		desc += ": " + strings.Join(d.Reasons, "; ")
	}
	_ = adminJSON(c, fiber.StatusForbidden, fiber.Map{
		"error": "access_denied", "error_description": desc, "decision_id": d.ID, "reasons": d.Reasons,
	})
	return d, false
}

func adminTarget(kind, name string) string {
	if name == "" {
		return kind
	}
	return kind + "/" + name
}

// changeMeta names who made a change and on what authority. The agent is the
// one the token's client is registered as, when the topology knows it.
func (a *adminAPI) changeMeta(c *fiber.Ctx, p *identity.Principal, d policy.Decision) store.ChangeMeta {
	meta := store.ChangeMeta{Subject: p.Subject, Issuer: p.Issuer, DecisionID: d.ID, Revision: d.Revision, RequestID: requestID(c)}
	if id, header, err := agentHeader(c); err == nil {
		if agent, err := a.s.Gateway.topo.Load().agentFor(id, header, p); err == nil {
			meta.Agent = agent.ID()
		}
	}
	return meta
}

// apply hands a stored change's audit record to the audit sinks and swaps the
// routing table. The store already holds the record (written with the
// change); s.Audit also writes to the store, where a record whose id is
// stored is skipped, so the extra sinks (stdout, HTTP collector) get it
// once and the store does not get it twice. false: the table could not be
// swapped and the request has been answered with 500.
func (a *adminAPI) apply(c *fiber.Ctx, rec audit.Record) bool {
	a.s.Audit.Write(context.WithoutCancel(c.UserContext()), rec)
	a.log.Info("admin change", "action", rec.Action, "kind", rec.ObjectKind, "name", rec.ObjectName,
		"subject", rec.Subject, "decision_id", rec.DecisionID, "request_id", rec.RequestID)
	if err := a.s.Reload(c.UserContext()); err != nil {
		a.log.Error("admin change stored but not applied", "request_id", rec.RequestID, "err", err)
		_ = adminError(c, fiber.StatusInternalServerError, "server_error",
			"the change was stored but this gateway could not apply it yet; it retries when it next polls the store (request id "+rec.RequestID+")", nil)
		return false
	}
	return true
}

// auditParams are the query parameters of GET /admin/v1/audit.
var auditParams = []string{"kind", "subject", "agent", "backend", "decision", "since", "until", "limit", "cursor", "include"}

func (a *adminAPI) handleAudit(c *fiber.Ctx) error {
	p, ok := a.authenticate(c)
	if !ok {
		return nil
	}
	if _, ok := a.authorize(c, p, actionList, "audit", "", nil); !ok {
		return nil
	}
	q, problems := parseAuditQuery(c)
	if len(problems) > 0 {
		return invalid(c, problems)
	}
	// Recorded policy inputs are returned only when asked for, and asking
	// is its own decision (kind audit_input), so that a policy can keep
	// them from roles that may read the rest of the trail.
	if q.IncludeInput {
		if _, ok := a.authorize(c, p, actionList, "audit_input", "", nil); !ok {
			return nil
		}
	}
	recs, next, err := a.s.Store.QueryAudit(c.UserContext(), q)
	if errors.Is(err, audit.ErrInvalidQuery) {
		return invalid(c, []string{err.Error()})
	}
	if err != nil {
		return a.internal(c, "query audit", err)
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	return adminJSON(c, fiber.StatusOK, fiber.Map{"records": recs, "next_cursor": next})
}

func parseAuditQuery(c *fiber.Ctx) (audit.Query, []string) {
	var (
		q        audit.Query
		problems []string
		seen     = map[string]bool{}
	)
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		key, val := string(k), string(v)
		switch {
		case !slices.Contains(auditParams, key):
			problems = append(problems, fmt.Sprintf("query parameter %q: unknown (want %s)", key, strings.Join(auditParams, ", ")))
			return
		case seen[key]:
			problems = append(problems, fmt.Sprintf("query parameter %s: given more than once", key))
			return
		}
		seen[key] = true
		var err error
		switch key {
		case "kind":
			q.Kind = audit.Kind(val)
		case "subject":
			q.Subject = val
		case "agent":
			q.Agent = val
		case "backend":
			q.Backend = val
		case "decision":
			q.Decision = val
		case "cursor":
			q.Cursor = val
		case "include":
			if val != "input" {
				problems = append(problems, fmt.Sprintf("query parameter include: want input, got %q", truncate(val, 32)))
				return
			}
			q.IncludeInput = true
		case "since":
			q.Since, err = time.Parse(time.RFC3339Nano, val)
		case "until":
			q.Until, err = time.Parse(time.RFC3339Nano, val)
		case "limit":
			// The store would cut a larger page or default a zero one; the
			// API says what it serves instead of silently serving less.
			if n, err := strconv.Atoi(val); err == nil && n >= 1 && n <= audit.MaxLimit {
				q.Limit = n
				return
			}
			problems = append(problems, fmt.Sprintf("query parameter limit: want an integer from 1 to %d, got %q", audit.MaxLimit, truncate(val, 32)))
			return
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("query parameter %s: want an RFC 3339 time such as 2026-01-02T15:04:05Z", key))
		}
	})
	// Every bad parameter in one answer: the filters that parsed are
	// checked too, whatever else was wrong.
	if _, err := q.Normalize(); err != nil {
		for _, fe := range audit.FieldErrors(err) {
			problems = append(problems, "query parameter "+fe.Field+": "+fe.Problem)
		}
	}
	return q, problems
}

func (a *adminAPI) methodNotAllowed(allow string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if _, ok := a.authenticate(c); !ok {
			return nil
		}
		c.Set(fiber.HeaderAllow, allow)
		return adminError(c, fiber.StatusMethodNotAllowed, "invalid_request", "method not allowed: use "+allow, nil)
	}
}

func (a *adminAPI) notFound(c *fiber.Ctx) error {
	if _, ok := a.authenticate(c); !ok {
		return nil
	}
	return adminError(c, fiber.StatusNotFound, "not_found", "no admin API route "+c.Method()+" "+c.Path()+
		"; see /admin/v1/agents, /admin/v1/backends, /admin/v1/audit and /admin/v1/tool-integrity/{backend}/pending", nil)
}

// internal logs an unexpected failure and answers 500 without its detail,
// which may name database internals.
func (a *adminAPI) internal(c *fiber.Ctx, what string, err error) error {
	rid := requestID(c)
	a.log.Error("admin api: "+what, "request_id", rid, "err", err)
	return adminError(c, fiber.StatusInternalServerError, "server_error", "internal error (request id "+rid+")", nil)
}

func invalid(c *fiber.Ctx, problems []string) error {
	return adminError(c, fiber.StatusBadRequest, "invalid_request", strings.Join(problems, "; "), problems)
}

func adminError(c *fiber.Ctx, status int, code, desc string, details []string) error {
	body := fiber.Map{"error": code, "error_description": desc}
	if len(details) > 0 {
		body["details"] = details
	}
	return adminJSON(c, status, body)
}

// adminJSON answers with v as JSON. Unlike c.JSON it leaves <, > and & as
// they are: messages such as "must be >= 0" stay readable with curl, and
// these are API responses that no browser renders (see setSecurityHeaders).
func adminJSON(c *fiber.Ctx, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode admin response: %w", err)
	}
	return sendJSON(c, status, buf.Bytes())
}

func requestID(c *fiber.Ctx) string {
	if id, ok := c.Locals("requestid").(string); ok {
		return strings.Clone(id)
	}
	return ""
}
