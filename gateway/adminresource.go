package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/store"
	"github.com/mcpgw/mcpgw/internal/store/configjson"
)

// The CRUD of one collection (agents, backends), shared by /admin/v1 and
// the Okta MCP adapter's routes: authenticate, authorize, read, validate the
// whole candidate topology, write with its audit record, reload.
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
		problems = append(problems, r.api.s.Gateway.federatedProblems(cand.Backends)...)
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
