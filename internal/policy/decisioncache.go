package policy

import (
	"hash/maphash"
	"slices"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
)

// Decision cache.
//
// A decision is a function of the input, the data and the policy, unless the
// policy calls a builtin that reads something else (the clock, the network,
// randomness, the runtime) or acts on the world (print). For a policy that
// calls none, the engine remembers decisions: the same message from the same
// caller, under the same policy activation, is answered without evaluating.
// Each activation has its own cache, so a new policy or new data starts
// empty and no revision check is needed on lookup.
//
// The key covers everything callInput hands the policy. It is 128 bits from
// two independently seeded hashes: a collision here would allow a call, so
// it must be out of reach by chance, and the seeds are secret per
// activation, so it is out of reach by design. The cache is bounded by a
// number of entries (a decision is a few hundred bytes) and has no
// background goroutines, so an activation that is replaced needs no
// shutdown.

// DefaultDecisionCacheSize is how many decisions one policy activation
// remembers.
const DefaultDecisionCacheSize = 16384

type decisionCache struct {
	seeds   [2]maphash.Seed
	entries *lru.Cache[[2]uint64, decided]
	// shapes holds, per caller, tool and argument names (baseKey), the
	// sets of arguments its decisions read (argsprobe.go).
	shapes *lru.Cache[[2]uint64, argumentShapes]
	// probe: decisions are keyed by the arguments they read; otherwise by
	// all of them (probesArguments).
	probe bool
}

// newDecisionCache returns the decision cache of one activation of
// compiler, or nil when decisions must not be cached: the cache is off
// (size < 0) or the decision rule may call a builtin that is not a function
// of its arguments.
func newDecisionCache(compiler *ast.Compiler, size int) (*decisionCache, string) {
	if size < 0 {
		return nil, "decision cache off"
	}
	if why := impureQuery(compiler, decisionRule); why != "" {
		return nil, why
	}
	if size == 0 {
		size = DefaultDecisionCacheSize
	}
	entries, err := lru.New[[2]uint64, decided](size)
	if err != nil {
		return nil, err.Error()
	}
	shapes, err := lru.New[[2]uint64, argumentShapes](size)
	if err != nil {
		return nil, err.Error()
	}
	return &decisionCache{
		seeds:   [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		entries: entries, shapes: shapes,
		probe: probesArguments(compiler, decisionRule),
	}, ""
}

// impureQuery says why query's value may differ between two evaluations
// over the same input and data, or "" when it cannot.
func impureQuery(compiler *ast.Compiler, query string) string {
	f, _, rules, err := queryRules(compiler, query)
	if err != nil {
		return err.Error()
	}
	for _, r := range rules {
		if f.inspect(r).impure {
			return "rule " + r.Ref().String() + " calls a builtin that is not a function of its arguments"
		}
	}
	return ""
}

func (c *decisionCache) get(key [2]uint64) (decided, bool) {
	if c == nil {
		return decided{}, false
	}
	return c.entries.Get(key)
}

// baseKey hashes, twice, what callInput builds from in but the arguments'
// values: the caller, the tool and its catalog entry, and the arguments'
// names, sorted (a policy can see which are there without reading any).
func (c *decisionCache) baseKey(in *Input, names []string) [2]uint64 {
	var k [2]uint64
	for i, seed := range c.seeds {
		h := callerKey(seed, in, "decision", "", 0)
		writeString(h, in.MCP.Tool)
		writeBool(h, in.MCP.Arguments != nil)
		writeStrings(h, names)
		tools := in.Tools
		if in.MCP.Method == "tools/call" {
			tools = calledEntries(in.Tools, in.MCP.Tool)
		}
		writeTools(h, seed, tools)
		writeResources(h, in.Resources)
		writePrompts(h, seed, in.Prompts)
		k[i] = h.Sum64()
	}
	return k
}

// key is base with the values of the named arguments: the key of a
// decision that read those.
func (c *decisionCache) key(base [2]uint64, in *Input, names []string) [2]uint64 {
	var k [2]uint64
	for i, seed := range c.seeds {
		var h maphash.Hash
		h.SetSeed(seed)
		writeUint(&h, base[i])
		writeUint(&h, uint64(len(names)))
		for _, n := range names {
			writeString(&h, n)
			writeUint(&h, hashAny(seed, in.MCP.Arguments[n], 0))
		}
		k[i] = h.Sum64()
	}
	return k
}

// callLookup is one decision's way through the cache: the activation it
// looked in and the base key, for remembering the evaluated decision.
type callLookup struct {
	snap *snapshot
	base [2]uint64
	// names are the call's argument names, sorted.
	names []string
}

// argumentNames lists in's argument names, sorted.
func argumentNames(in *Input) []string {
	names := make([]string, 0, len(in.MCP.Arguments))
	for n := range in.MCP.Arguments {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// cachedDecision returns the remembered decision value for in under the
// active policy: one whose evaluation read arguments that in has too, with
// the same values.
func (e *Engine) cachedDecision(in *Input) (decided, callLookup, bool) {
	if e.usable() != nil {
		return decided{}, callLookup{}, false
	}
	snap := e.snap.Load()
	if snap == nil || snap.broken != nil || snap.decisions == nil {
		return decided{}, callLookup{}, false
	}
	c := snap.decisions
	look := callLookup{snap: snap, names: argumentNames(in)}
	look.base = c.baseKey(in, look.names)
	shapes, _ := c.shapes.Get(look.base)
	for _, names := range shapes {
		if v, ok := c.get(c.key(look.base, in, names)); ok {
			return v, look, true
		}
	}
	return decided{}, look, false
}

// decisionCacheFor is the decision cache of a new activation of compiler.
func (e *Engine) decisionCacheFor(compiler *ast.Compiler, revision string) *decisionCache {
	c, whyNot := newDecisionCache(compiler, e.opts.DecisionCacheSize)
	if c == nil {
		e.logger.Debug("policy decisions not cached", "revision", revision, "reason", whyNot)
	}
	return c
}

// rememberDecision keeps dec, the decision of in by snap, when snap is the
// activation of the lookup: under the arguments reads names (every
// argument when reads is nil: the evaluation was not probed).
func (snap *snapshot) rememberDecision(look callLookup, in *Input, dec decided, reads *argumentReads) {
	if snap == nil || snap != look.snap || snap.decisions == nil {
		return
	}
	c := snap.decisions
	forceAll(dec.value)
	names := look.names
	if reads != nil {
		names = reads.sorted()
	}
	c.entries.Add(c.key(look.base, in, names), dec)
	shapes, _ := c.shapes.Get(look.base)
	c.shapes.Add(look.base, shapes.with(names))
}
