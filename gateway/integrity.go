package gateway

import (
	"context"
	"strings"
	"sync"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/integrity"
	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"github.com/mcpgw/mcpgw/internal/store"
)

// Tool integrity on the request path (README, Tool integrity). Each list a
// backend with tool_integrity on returns is classified item by item against
// the pins in the store, which every replica shares. A replica remembers
// the pins it read and which definition it last recorded as each item's
// current one, so a list of known definitions costs no store access; a
// definition it has not recorded is written (ObserveDefinitions), and the
// one replica whose write stores it first announces it: a WARN line, the
// metric and a tool_change audit record. Approvals and rejections bump the
// store's pin revision, and every replica drops what it remembers when it
// sees the revision move (FollowPins).

// PinStore is the part of the store tool integrity uses; store.Store is one.
type PinStore interface {
	ObserveDefinitions(ctx context.Context, backend string, defs []integrity.Definition, trustFirst bool, meta store.ChangeMeta) ([]store.Sighting, []audit.Record, error)
	ListPins(ctx context.Context, backend string) ([]store.Pin, error)
	PinRevision(ctx context.Context) (int64, error)
}

// integrityObserver is the part of the Observer (telemetry.Metrics) that
// counts new and changed definitions.
type integrityObserver interface {
	ToolDefinitionChange(backend, kind, status string)
}

type pinKey struct {
	kind integrity.Kind
	name string
}

// pinMemo is what a replica remembers of one item: its pin, and the hash
// this replica last recorded as the item's current definition.
type pinMemo struct {
	pin     integrity.Pin
	current string
}

type pinMemory struct {
	mu sync.Mutex
	// gen grows whenever the memory is dropped, so a load that raced with
	// an approval does not store what it read before it.
	gen      uint64
	rev      int64
	backends map[string]map[pinKey]pinMemo
}

// forget drops every remembered pin: the next list reads them again.
func (p *pinMemory) forget() {
	p.mu.Lock()
	p.gen++
	p.backends = nil
	p.mu.Unlock()
}

// FollowPins drops the remembered pins when the store's pin revision moved
// (another replica approved or rejected something). Server polls it with
// the store's revision.
func (g *Gateway) FollowPins(ctx context.Context) error {
	if g.opts.Pins == nil {
		return nil
	}
	rev, err := g.opts.Pins.PinRevision(ctx)
	if err != nil {
		return err
	}
	p := &g.pins
	p.mu.Lock()
	moved := rev != p.rev
	p.rev = rev
	p.mu.Unlock()
	if moved {
		p.forget()
	}
	return nil
}

// pinsOf returns the remembered pins of backend, reading them from the
// store when none are remembered.
func (g *Gateway) pinsOf(ctx context.Context, backend string) (map[pinKey]pinMemo, uint64, error) {
	p := &g.pins
	p.mu.Lock()
	m, gen := p.backends[backend], p.gen
	p.mu.Unlock()
	if m != nil {
		return m, gen, nil
	}
	stored, err := g.opts.Pins.ListPins(ctx, backend)
	if err != nil {
		return nil, gen, err
	}
	m = make(map[pinKey]pinMemo, len(stored))
	for _, sp := range stored {
		m[pinKey{sp.Kind, sp.Name}] = pinMemo{pin: sp.Integrity(), current: sp.CurrentHash}
	}
	return m, gen, nil
}

// remember stores m as backend's pins unless the memory was dropped since
// gen.
func (g *Gateway) remember(backend string, m map[pinKey]pinMemo, gen uint64) {
	p := &g.pins
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen {
		return
	}
	if p.backends == nil {
		p.backends = map[string]map[pinKey]pinMemo{}
	}
	p.backends[backend] = m
}

// classify classifies the items of one list of cl's backend, recording the
// definitions it has not recorded yet. It returns nil when the backend's
// tool_integrity is off or the list is not pinned (resources). An item
// whose definition cannot be built is classified new: nothing can be
// approved of it, so an enforcing policy holds it.
func (g *Gateway) classify(ctx context.Context, cl *call, list mcp.ListKey, items []mcp.ListItem) []integrity.Result {
	b := cl.route.backend
	kind, pinned := pinnedKind(list)
	if !pinned || b.IntegrityMode() == config.IntegrityOff {
		return nil
	}
	defs := make([]integrity.Definition, len(items))
	for i, it := range items {
		defs[i], _ = integrity.FromItem(kind, it.Item)
	}
	out := make([]integrity.Result, len(items))
	if g.opts.Pins == nil {
		// No store: nothing was ever approved.
		for i := range out {
			out[i] = integrity.Result{Status: integrity.StatusNew}
		}
		return out
	}
	memo, gen, err := g.pinsOf(ctx, b.Name)
	if err != nil {
		g.log.Warn("tool integrity: cannot read pins; every item counts as new", "request_id", cl.requestID, "backend", b.Name, "err", secrets.Error(err))
		memo = map[pinKey]pinMemo{}
	}
	var unrecorded []integrity.Definition
	for _, d := range defs {
		if d.Hash != "" && memo[pinKey{d.Kind, d.Name}].current != d.Hash {
			unrecorded = append(unrecorded, d)
		}
	}
	if err == nil {
		if len(unrecorded) > 0 {
			memo = g.record(ctx, cl, unrecorded, memo)
		}
		g.remember(b.Name, memo, gen)
	}
	for i, d := range defs {
		if d.Hash == "" {
			out[i] = integrity.Result{Status: integrity.StatusNew}
			continue
		}
		out[i] = integrity.Classify(d, memo[pinKey{d.Kind, d.Name}].pin)
	}
	return out
}

// record writes definitions this replica has not recorded and announces
// those stored for the first time anywhere. It returns the memory updated
// (a copy: the remembered map may be read by other requests).
func (g *Gateway) record(ctx context.Context, cl *call, defs []integrity.Definition, memo map[pinKey]pinMemo) map[pinKey]pinMemo {
	b := cl.route.backend
	next := make(map[pinKey]pinMemo, len(memo)+len(defs))
	for k, v := range memo {
		next[k] = v
	}
	trust := b.IntegrityMode() == config.IntegrityTrustOnFirstUse
	sightings, recs, err := g.opts.Pins.ObserveDefinitions(ctx, b.Name, defs, trust, store.ChangeMeta{RequestID: cl.requestID})
	if err != nil {
		g.log.Warn("tool integrity: cannot record definitions", "request_id", cl.requestID, "backend", b.Name, "err", secrets.Error(err))
		return memo
	}
	for _, r := range recs {
		// Already in the store (written with the pins); the store sink
		// skips it, the other sinks get it.
		if g.opts.Audit != nil {
			g.opts.Audit(context.WithoutCancel(ctx), r)
		}
	}
	for i, sg := range sightings {
		d := defs[i]
		next[pinKey{d.Kind, d.Name}] = pinMemo{pin: sg.Pin.Integrity(), current: d.Hash}
		if !sg.Fresh {
			continue
		}
		g.log.Warn("tool integrity: "+string(sg.Status)+" definition", "request_id", cl.requestID, "backend", b.Name,
			"kind", string(d.Kind), "name", truncate(d.Name, maxLoggedName), "status", string(sg.Status),
			"changed", strings.Join(sg.Changed, ","), "hash", d.Hash[:16], "tool_integrity", b.IntegrityMode(),
			"approved", sg.Pin.ApprovedHash == d.Hash)
		if o, ok := g.opts.Observer.(integrityObserver); ok {
			o.ToolDefinitionChange(b.Name, string(d.Kind), string(sg.Status))
		}
	}
	return next
}

// promptIntegrity is the requested prompt's entry for a prompts/get, with
// the classification of its current definition: the one last recorded in
// the store from a prompts/list (on any replica). Without it an enforcing
// policy could hide a changed prompt from lists while prompts/get still
// served it to anyone who knew the name. A prompt no list showed yet is
// new. nil when the backend's tool_integrity is off.
func (g *Gateway) promptIntegrity(ctx context.Context, cl *call, name string) *policy.Prompt {
	b := cl.route.backend
	if b.IntegrityMode() == config.IntegrityOff {
		return nil
	}
	entry := &policy.Prompt{Name: name, Integrity: &policy.Integrity{Status: string(integrity.StatusNew)}}
	if g.opts.Pins == nil {
		return entry
	}
	// Read from the store, not from the pins this replica remembers: another
	// replica may have recorded a changed definition since, and recording
	// does not move the pin revision that would make this one forget.
	pins, err := g.opts.Pins.ListPins(ctx, b.Name)
	if err != nil {
		// Fail closed: unclassified is held by an enforcing policy.
		g.log.Warn("tool integrity: cannot read pins; the prompt counts as new", "request_id", cl.requestID, "backend", b.Name, "err", secrets.Error(err))
		return entry
	}
	for _, p := range pins {
		if p.Kind != integrity.KindPrompt || p.Name != name || p.CurrentHash == "" {
			continue
		}
		r := integrity.Classify(integrity.Definition{Kind: p.Kind, Name: p.Name, Hash: p.CurrentHash, Body: p.CurrentBody}, p.Integrity())
		entry.Integrity = integrityInput(r)
	}
	return entry
}
