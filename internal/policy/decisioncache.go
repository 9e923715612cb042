package policy

import (
	"hash/maphash"

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
	entries *lru.Cache[[2]uint64, ast.Value]
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
	entries, err := lru.New[[2]uint64, ast.Value](size)
	if err != nil {
		return nil, err.Error()
	}
	return &decisionCache{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, entries: entries}, ""
}

// impureQuery says why query's value may differ between two evaluations
// over the same input and data, or "" when it cannot.
func impureQuery(compiler *ast.Compiler, query string) string {
	body, err := ast.ParseBody(query)
	if err != nil {
		return err.Error()
	}
	f := &folder{compiler: compiler, facts: map[*ast.Rule]*ruleFacts{}}
	for _, r := range f.reach(f.dependencies(body)) {
		if f.inspect(r).impure {
			return "rule " + r.Ref().String() + " calls a builtin that is not a function of its arguments"
		}
	}
	return ""
}

func (c *decisionCache) get(key [2]uint64) (ast.Value, bool) {
	if c == nil {
		return nil, false
	}
	return c.entries.Get(key)
}

func (c *decisionCache) add(key [2]uint64, v ast.Value) {
	if c != nil {
		c.entries.Add(key, v)
	}
}

// key hashes what callInput builds from in, twice; without the arguments
// when withArguments is false (the key of a decision that did not read
// them: argsprobe.go). The two kinds of key never meet: each starts with
// its own tag.
func (c *decisionCache) key(in *Input, withArguments bool) [2]uint64 {
	var k [2]uint64
	for i, seed := range c.seeds {
		h := callerKey(seed, in, "decision", "", 0)
		writeString(h, in.MCP.Tool)
		writeBool(h, withArguments)
		if withArguments {
			writeUint(h, hashAny(seed, in.MCP.Arguments, 0))
		}
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

// cachedDecision returns the remembered decision value for in under the
// active policy: one that did not read the arguments, else one for these
// very arguments.
func (e *Engine) cachedDecision(in *Input) (ast.Value, *snapshot, bool) {
	if e.usable() != nil {
		return nil, nil, false
	}
	snap := e.snap.Load()
	if snap == nil || snap.broken != nil || snap.decisions == nil {
		return nil, nil, false
	}
	for _, withArguments := range []bool{false, true} {
		if v, ok := snap.decisions.get(snap.decisions.key(in, withArguments)); ok {
			return v, snap, true
		}
	}
	return nil, snap, false
}

// decisionCacheFor is the decision cache of a new activation of compiler.
func (e *Engine) decisionCacheFor(compiler *ast.Compiler, revision string) *decisionCache {
	c, whyNot := newDecisionCache(compiler, e.opts.DecisionCacheSize)
	if c == nil {
		e.logger.Debug("policy decisions not cached", "revision", revision, "reason", whyNot)
	}
	return c
}

// rememberDecision keeps v, the decision of in by snap, when snap is the
// activation that was active at the lookup (keyedBy): under the key without
// the arguments if the evaluation (and reading v) did not read them.
func (snap *snapshot) rememberDecision(keyedBy *snapshot, in *Input, v ast.Value, probe argumentsProbe) {
	if snap == nil || snap != keyedBy || snap.decisions == nil {
		return
	}
	forceAll(v)
	snap.decisions.add(snap.decisions.key(in, probe.wasRead()), v)
}
