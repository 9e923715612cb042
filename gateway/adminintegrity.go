package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/integrity"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/store"
)

// The tool integrity part of the admin API (README, Tool integrity):
//
//	GET  /admin/v1/tool-integrity/{backend}/pending          new and changed items, not yet approved or rejected
//	GET  /admin/v1/tool-integrity/{backend}/diff?kind=&name= approved and current definition of one item
//	POST /admin/v1/tool-integrity/{backend}/approve           {"kind","name","hash"?} or {"all": true}
//	POST /admin/v1/tool-integrity/{backend}/reject            the same
//
// data.mcp.admin.allow decides them with admin.kind "tool_integrity",
// admin.name the backend and admin.action list, get, approve or reject:
// approving is its own action, so a policy can give it to a review role
// without giving every write. Every approval and rejection is a tool_change
// audit record naming who and when, written with the pin.

const integrityKind = "tool_integrity"

// Admin actions of tool integrity.
const (
	actionApprove = "approve"
	actionReject  = "reject"
)

func (a *adminAPI) mountIntegrity(r fiber.Router) {
	base := "/tool-integrity/:backend"
	r.Get(base+"/pending", a.handlePending)
	r.Get(base+"/diff", a.handleDiff)
	r.Post(base+"/approve", func(c *fiber.Ctx) error { return a.handleDecide(c, true) })
	r.Post(base+"/reject", func(c *fiber.Ctx) error { return a.handleDecide(c, false) })
	r.All(base+"/pending", a.methodNotAllowed("GET"))
	r.All(base+"/diff", a.methodNotAllowed("GET"))
	r.All(base+"/approve", a.methodNotAllowed("POST"))
	r.All(base+"/reject", a.methodNotAllowed("POST"))
}

// pinView is how the API shows one item.
type pinView struct {
	Kind         integrity.Kind `json:"kind"`
	Name         string         `json:"name"`
	Status       string         `json:"status"`
	Changed      []string       `json:"changed,omitempty"`
	Rejected     bool           `json:"rejected,omitempty"`
	CurrentHash  string         `json:"current_hash"`
	SeenAt       time.Time      `json:"seen_at"`
	ApprovedHash string         `json:"approved_hash,omitempty"`
	ApprovedAt   *time.Time     `json:"approved_at,omitempty"`
	ApprovedBy   string         `json:"approved_by,omitempty"`
}

func viewPin(p store.Pin) pinView {
	c := integrity.Classify(integrity.Definition{Kind: p.Kind, Name: p.Name, Hash: p.CurrentHash, Body: p.CurrentBody}, p.Integrity())
	v := pinView{Kind: p.Kind, Name: p.Name, Status: string(c.Status), Changed: c.Changed, Rejected: c.Rejected,
		CurrentHash: p.CurrentHash, SeenAt: p.CurrentAt, ApprovedHash: p.ApprovedHash, ApprovedBy: p.ApprovedBy}
	if !p.ApprovedAt.IsZero() {
		at := p.ApprovedAt
		v.ApprovedAt = &at
	}
	return v
}

// integrityBackend authenticates and authorizes action on the backend the
// URL names and checks that it exists; ok is false when it has answered.
func (a *adminAPI) integrityBackend(c *fiber.Ctx, action string) (backend string, p pinCaller, ok bool) {
	if p.principal, ok = a.authenticate(c); !ok {
		return "", p, false
	}
	backend = strings.Clone(c.Params("backend"))
	if p.decision, ok = a.authorize(c, p.principal, action, integrityKind, backend, nil); !ok {
		return "", p, false
	}
	if _, err := a.s.Store.GetBackend(c.UserContext(), backend); errors.Is(err, store.ErrNotFound) {
		_ = adminError(c, fiber.StatusNotFound, "not_found", fmt.Sprintf("backends.%s: no such entry", backend), nil)
		return "", p, false
	} else if err != nil {
		_ = a.internal(c, "get backends."+backend, err)
		return "", p, false
	}
	return backend, p, true
}

func (a *adminAPI) handlePending(c *fiber.Ctx) error {
	backend, _, ok := a.integrityBackend(c, actionList)
	if !ok {
		return nil
	}
	pins, err := a.s.Store.ListPins(c.UserContext(), backend)
	if err != nil {
		return a.internal(c, "list pins of "+backend, err)
	}
	pending := []pinView{}
	for _, p := range pins {
		if p.Pending() {
			pending = append(pending, viewPin(p))
		}
	}
	return adminJSON(c, fiber.StatusOK, fiber.Map{"backend": backend, "tool_integrity": a.modeOf(backend), "pending": pending})
}

// modeOf is the backend's tool_integrity in the routing table this replica
// serves.
func (a *adminAPI) modeOf(backend string) string {
	if r, ok := a.s.Gateway.topo.Load().backends[backend]; ok {
		return r.backend.IntegrityMode()
	}
	return config.IntegrityOff
}

func (a *adminAPI) handleDiff(c *fiber.Ctx) error {
	backend, _, ok := a.integrityBackend(c, actionGet)
	if !ok {
		return nil
	}
	kind, name := integrity.Kind(c.Query("kind", string(integrity.KindTool))), c.Query("name")
	if problems := itemProblems(kind, name, false); len(problems) > 0 {
		return invalid(c, problems)
	}
	pins, err := a.s.Store.ListPins(c.UserContext(), backend)
	if err != nil {
		return a.internal(c, "list pins of "+backend, err)
	}
	i := slices.IndexFunc(pins, func(p store.Pin) bool { return p.Kind == kind && p.Name == name })
	if i < 0 {
		return adminError(c, fiber.StatusNotFound, "not_found", fmt.Sprintf("backend %s has listed no %s named %q", backend, kind, name), nil)
	}
	p := pins[i]
	return adminJSON(c, fiber.StatusOK, fiber.Map{
		"backend": backend, "item": viewPin(p),
		"approved": definitionView(p.ApprovedHash, p.ApprovedBody),
		"current":  definitionView(p.CurrentHash, p.CurrentBody),
	})
}

// definitionView is one stored definition; null when there is none.
func definitionView(hash string, body json.RawMessage) any {
	if hash == "" || len(body) == 0 {
		return nil
	}
	return fiber.Map{"hash": hash, "definition": body}
}

// decideBody is the body of approve and reject.
type decideBody struct {
	Kind integrity.Kind `json:"kind"`
	Name string         `json:"name"`
	Hash string         `json:"hash"`
	All  bool           `json:"all"`
}

func (a *adminAPI) handleDecide(c *fiber.Ctx, approve bool) error {
	action := actionReject
	if approve {
		action = actionApprove
	}
	backend, who, ok := a.integrityBackend(c, action)
	if !ok {
		return nil
	}
	if mediaType(c.Get(fiber.HeaderContentType)) != fiber.MIMEApplicationJSON {
		return adminError(c, fiber.StatusUnsupportedMediaType, "invalid_request", "Content-Type must be application/json", nil)
	}
	var body decideBody
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return invalid(c, []string{"request body: want {\"kind\", \"name\", \"hash\"?} or {\"all\": true}: " + err.Error()})
	}
	if body.Kind == "" && !body.All {
		body.Kind = integrity.KindTool
	}
	if problems := itemProblems(body.Kind, body.Name, body.All); len(problems) > 0 {
		return invalid(c, problems)
	}
	d := store.PinDecision{Backend: backend, Kind: body.Kind, Name: body.Name, Hash: body.Hash, Approve: approve}
	pins, recs, err := a.s.Store.DecidePins(c.UserContext(), d, a.changeMeta(c, who.principal, who.decision))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return adminError(c, fiber.StatusNotFound, "not_found", fmt.Sprintf("backend %s has listed no %s named %q", backend, body.Kind, body.Name), nil)
	case errors.Is(err, store.ErrStale):
		return adminError(c, fiber.StatusConflict, "conflict", fmt.Sprintf("hash: %s %q is no longer the definition with hash %s; review it again", body.Kind, body.Name, body.Hash), nil)
	case err != nil:
		return a.internal(c, action+" pins of "+backend, err)
	}
	// This replica applies the decision at once; the others when they
	// next poll the store.
	a.s.Gateway.pins.forget()
	for _, r := range recs {
		a.s.Audit.Write(context.WithoutCancel(c.UserContext()), r)
		a.log.Info("tool integrity "+action, "backend", backend, "kind", string(r.ObjectKind), "name", r.ObjectName,
			"subject", r.Subject, "decision_id", r.DecisionID, "request_id", r.RequestID)
	}
	views := make([]pinView, 0, len(pins))
	for _, p := range pins {
		views = append(views, viewPin(p))
	}
	return adminJSON(c, fiber.StatusOK, fiber.Map{"backend": backend, action + "d": views})
}

// pinCaller is who calls a tool integrity route and the decision that let
// them.
type pinCaller struct {
	principal *identity.Principal
	decision  policy.Decision
}

// itemProblems checks the item a call names: a known kind and a name, or
// all (for approve and reject) without either.
func itemProblems(kind integrity.Kind, name string, all bool) []string {
	var problems []string
	if all {
		if name != "" {
			problems = append(problems, "name: give a name or all, not both")
		}
		return problems
	}
	if !slices.Contains(integrity.Kinds, kind) {
		problems = append(problems, fmt.Sprintf("kind: %q: want tool, prompt or resource_template", kind))
	}
	if name == "" {
		problems = append(problems, "name: required (the tool's or prompt's name, the template's uriTemplate)")
	}
	return problems
}
