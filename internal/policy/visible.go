package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/open-policy-agent/opa/v1/ast"
)

// Visibility: which listed tools, resources and prompts a caller may see,
// one evaluation per list (cached), its budget growing with the list.

// visibleRule names the rule that filters a kind of catalog.
func visibleRule(kind ListKind) (string, bool) {
	switch kind {
	case ListTools:
		return "data.mcp.gateway.visible_tools", true
	case ListResources:
		return "data.mcp.gateway.visible_resources", true
	case ListPrompts:
		return "data.mcp.gateway.visible_prompts", true
	}
	return "", false
}

// listKinds are the kinds of catalog the gateway filters.
func listKinds() []ListKind { return []ListKind{ListTools, ListResources, ListPrompts} }

// optionalList reports the kinds of catalog whose visibility rule a policy
// may leave out: every item of such a kind is then hidden. A policy without
// visible_tools is not ready, as one without decision.
func optionalList(kind ListKind) bool { return kind == ListResources || kind == ListPrompts }

// kindNouns names the items of a kind of catalog, for log messages.
var kindNouns = map[ListKind]string{ListTools: "tool", ListResources: "resource", ListPrompts: "prompt"}

// Visible returns the names (URIs for resources) among in.Tools,
// in.Resources or in.Prompts that the caller may see. in.MCP.Tool and
// in.MCP.Arguments are ignored: visibility never depends on one call.
//
// Answers are cached per caller input, listed items and policy generation;
// the returned map may be shared with other callers and must not be
// modified. An error hides everything; so does a policy that leaves out
// visible_resources or visible_prompts, for that kind, without an error. A
// gateway that lists the same catalog for many callers should prepare it
// once and use VisibleCatalog.
func (e *Engine) Visible(ctx context.Context, in *Input, kind ListKind) (map[string]bool, error) {
	if _, ok := visibleRule(kind); !ok {
		return nil, fmt.Errorf("unknown list kind %q", kind)
	}
	if in == nil {
		return nil, errors.New("policy visibility: no input")
	}
	return e.visibleNames(ctx, in, kind, listedCount(in, kind),
		func(s *snapshot) uint64 { return listKey(e.seed, in, kind, s.revision, s.generation) },
		func() (ast.Value, error) { return listInput(in, kind) })
}

// VisibleCatalog is Visible over a prepared catalog: the caller comes from
// in (its own Tools, Resources and Prompts are ignored) and the items from
// c. A cache hit costs a hash of the caller; a miss skips converting the
// catalog.
func (e *Engine) VisibleCatalog(ctx context.Context, in *Input, c *Catalog) (map[string]bool, error) {
	if in == nil || c == nil {
		return nil, errors.New("policy visibility: no input or no catalog")
	}
	return e.visibleNames(ctx, in, c.kind, c.size,
		func(s *snapshot) uint64 { return catalogKey(e.seed, in, c, s.revision, s.generation) },
		func() (ast.Value, error) { return catalogInput(in, c) })
}

func (e *Engine) visibleNames(ctx context.Context, in *Input, kind ListKind, listed int, key func(*snapshot) uint64, input func() (ast.Value, error)) (map[string]bool, error) {
	if err := e.usable(); err != nil {
		return nil, err
	}
	if snap := e.snap.Load(); snap != nil && e.cacheTTL > 0 {
		names, ok := e.visible.Get(key(snap))
		if e.opts.OnVisibleCache != nil {
			e.opts.OnVisibleCache(ok)
		}
		if ok {
			return names, nil
		}
	}

	start := time.Now()
	d := Decision{ID: uuid.NewString(), Reasons: []string{}}
	rule, _ := visibleRule(kind)
	query := strings.TrimPrefix(rule, "data.mcp.gateway.")
	v, err := input()
	var snap *snapshot
	var names map[string]bool
	if err == nil {
		names, snap, err = e.evalVisible(ctx, kind, v, e.listTimeoutFor(listed))
	}
	if snap != nil {
		d.Revision = snap.revision
	}
	d.Elapsed = time.Since(start)
	if err != nil {
		d.Reasons = []string{"policy engine error: " + err.Error()}
		e.emit(ctx, query, in, d, listed, 0)
		return nil, fmt.Errorf("policy %s: %w", query, err)
	}
	d.Allow = true
	e.emit(ctx, query, in, d, listed, len(names))
	if e.cacheTTL > 0 {
		// Keyed by the snapshot that answered, which may be newer than the
		// one the lookup used.
		e.visible.SetWithTTL(key(snap), names, cacheCost(names), e.cacheTTL)
	}
	return names, nil
}

// listTimeoutItems is the list length ListTimeout is for.
const listTimeoutItems = 1000

// listTimeoutFor is the budget of a visibility query over listed items:
// ListTimeout up to listTimeoutItems, the same budget per item beyond. A
// fixed budget hid every item of a 100,000-tool list (the shipped policy
// needs ~7 µs of CPU per tool), while a policy that runs away (quadratic
// in the items) is still stopped, at the same cost per item as before.
func (e *Engine) listTimeoutFor(listed int) time.Duration {
	if listed <= listTimeoutItems {
		return e.listTimeout
	}
	return time.Duration(float64(e.listTimeout) * float64(listed) / listTimeoutItems)
}

func (e *Engine) evalVisible(ctx context.Context, kind ListKind, input ast.Value, timeout time.Duration) (map[string]bool, *snapshot, error) {
	rule, _ := visibleRule(kind)
	rs, snap, err := e.evaluateWithin(ctx, timeout, func(s *snapshot) preparedQuery { return s.visible[kind] }, input)
	if err != nil {
		return nil, snap, err
	}
	v, err := resultValue(rs)
	if errors.Is(err, errUndefined) {
		if snap.absent[kind] {
			// An optional rule the policy leaves out hides everything of
			// its kind; activate warned once.
			return map[string]bool{}, snap, nil
		}
		// A partial set with no members is defined and empty; undefined
		// means the policy has no such rule, or its rule has no value for
		// this input.
		return nil, snap, errors.New(rule + " is undefined")
	}
	if err != nil {
		return nil, snap, err
	}
	names, err := nameSet(v)
	if err != nil {
		return nil, snap, fmt.Errorf("malformed %s: %w", rule, err)
	}
	return names, snap, nil
}

func listedCount(in *Input, kind ListKind) int {
	switch kind {
	case ListTools:
		return len(in.Tools)
	case ListResources:
		return len(in.Resources)
	case ListPrompts:
		return len(in.Prompts)
	}
	return 0
}
