package gateway

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/store"
)

// The Okta MCP adapter's admin API, kept for the tools and scripts written
// against it:
//
//	GET    /api/admin/agents          GET    /api/admin/backends
//	POST   /api/admin/agents          POST   /api/admin/backends
//	PUT    /api/admin/agents/{name}   PUT    /api/admin/backends/{name}
//	DELETE /api/admin/agents/{name}   DELETE /api/admin/backends/{name}
//
// Entries are shown flat, named by agent_name / backend_name, as the adapter
// showed them. POST creates (409 if the name exists); PUT merges the fields
// it sends into the stored entry, as the adapter's update did. Both are
// /admin/v1 writes underneath: the same bearer token, the same
// data.mcp.admin.allow decision (admin.kind agents or backends), the same
// validation, secrets handling and audit records. What differs from the
// adapter: there is no /api/admin/login (the token comes from the identity
// provider) and secrets are never shown (GET answers "[REDACTED]").

// compatAdminPrefix is where the Okta MCP adapter served its admin API.
const compatAdminPrefix = "/api/admin"

func mountCompatResource[T any](r fiber.Router, res *resource[T]) {
	base := "/" + res.plural
	r.Get(base, res.compatList)
	r.Post(base, res.compatCreate)
	r.All(base, res.api.methodNotAllowed("GET, POST"))
	r.Put(base+"/:name", res.compatUpdate)
	r.Delete(base+"/:name", res.compatDelete)
	r.All(base+"/:name", res.api.methodNotAllowed("PUT, DELETE"))
}

func (a *adminAPI) compatNotFound(c *fiber.Ctx) error {
	if _, ok := a.authenticate(c); !ok {
		return nil
	}
	desc := "no admin API route " + c.Method() + " " + c.Path() + "; see /api/admin/agents and /api/admin/backends (or /admin/v1)"
	if strings.TrimSuffix(c.Path(), "/") == compatAdminPrefix+"/login" {
		desc = "there is no admin login: send a bearer token from your identity provider, as on every admin call"
	}
	return adminError(c, fiber.StatusNotFound, "not_found", desc, nil)
}

// compatName is the body member naming an entry: agent_name or backend_name.
func (r *resource[T]) compatName() string { return strings.TrimSuffix(r.plural, "s") + "_name" }

// compatView is an entry as the adapter showed it: its fields, flat, with
// agent_name or backend_name.
func (r *resource[T]) compatView(name string, v T) (map[string]any, error) {
	m, err := r.shown(v)
	if err != nil {
		return nil, err
	}
	m[r.compatName()] = name
	return m, nil
}

func (r *resource[T]) compatList(c *fiber.Ctx) error {
	return r.answerList(c, func(e store.Entry[T]) (any, error) { return r.compatView(r.name(e.Value), e.Value) })
}

// compatCreate is POST /api/admin/{agents,backends}: the body names the new
// entry in agent_name / backend_name.
func (r *resource[T]) compatCreate(c *fiber.Ctx) error {
	p, ok := r.api.authenticate(c)
	if !ok {
		return nil
	}
	body, name, problem := r.compatBody(c.Body(), "")
	if problem != "" {
		return invalid(c, []string{problem})
	}
	d, unlock, ok := r.authorizeWrite(c, p, actionWrite, name)
	if !ok {
		return nil
	}
	defer unlock()
	old, err := r.load(c.UserContext(), name)
	if err != nil {
		return r.api.internal(c, "get "+r.plural+"."+name, err)
	}
	if old != nil {
		msg := fmt.Sprintf("%s.%s: already exists; PUT %s/%s/%s changes it", r.plural, name, compatAdminPrefix, r.plural, name)
		return adminError(c, fiber.StatusConflict, "conflict", msg, []string{msg})
	}
	return r.compatSave(c, p, d, name, body, nil, fiber.StatusCreated)
}

// compatUpdate is PUT /api/admin/{agents,backends}/{name}: the fields sent
// replace the stored ones, the others stay (a shallow merge, as the
// adapter's update was).
func (r *resource[T]) compatUpdate(c *fiber.Ctx) error {
	w, ok := r.beginChange(c, true)
	if !ok {
		return nil
	}
	defer w.unlock()
	sent, _, problem := r.compatBody(c.Body(), w.name)
	if problem != "" {
		return invalid(c, []string{problem})
	}
	shown, err := r.shown(*w.old)
	if err != nil {
		return r.api.internal(c, "get "+r.plural+"."+w.name, err)
	}
	maps.Copy(shown, sent)
	return r.compatSave(c, w.p, w.d, w.name, shown, w.old, fiber.StatusOK)
}

func (r *resource[T]) compatSave(c *fiber.Ctx, p *identity.Principal, d policy.Decision, name string, body map[string]any, old *T, status int) error {
	b, err := json.Marshal(body)
	if err != nil {
		return r.api.internal(c, "encode "+r.plural+"."+name, err)
	}
	ae, _, answered := r.save(c, p, d, name, b, old)
	if answered {
		return nil
	}
	e, err := r.get(c.UserContext(), name)
	if err != nil {
		return r.api.internal(c, "get "+r.plural+"."+name, err)
	}
	view, err := r.compatView(ae.Name, e.Value)
	if err != nil {
		return r.api.internal(c, "get "+r.plural+"."+name, err)
	}
	return adminJSON(c, status, view)
}

func (r *resource[T]) compatDelete(c *fiber.Ctx) error {
	return r.answerDelete(c, func(name string) error {
		kind := strings.ToUpper(r.plural[:1]) + strings.TrimSuffix(r.plural[1:], "s")
		return adminJSON(c, fiber.StatusOK, fiber.Map{"message": fmt.Sprintf("%s '%s' deleted", kind, name)})
	})
}

// compatBody reads an adapter body: a JSON object whose agent_name /
// backend_name (or name) must be the entry's name, urlName when the URL
// names it. It returns the body without those members and the name.
func (r *resource[T]) compatBody(raw []byte, urlName string) (map[string]any, string, string) {
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil || body == nil {
		return nil, "", "request body: must be a JSON object shaped like an entry of " + r.plural + ": in config.yaml"
	}
	name := urlName
	for _, key := range []string{r.compatName(), "name"} {
		v, present := body[key]
		if !present {
			continue
		}
		s, _ := v.(string)
		switch {
		case s == "":
			return nil, "", fmt.Sprintf("%s: must be the entry's name (a string)", key)
		case name == "":
			name = s
		case s != name:
			return nil, "", fmt.Sprintf("%s: %q is not %q, the name in the URL (or the other name member)", key, s, name)
		}
		delete(body, key)
	}
	if name == "" {
		return nil, "", r.compatName() + ": required: the name of the new entry"
	}
	return body, name, ""
}
