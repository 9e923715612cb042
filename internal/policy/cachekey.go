package policy

import (
	"encoding/json"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
)

// Visibility answers are cached under a key that covers everything the
// visibility query's input holds (listInput): the whole input minus
// mcp.tool and mcp.arguments, the listed items of one kind, the policy
// revision and the policy generation (bumped at every compiler change, so
// even a reload with an unchanged revision starts afresh). Two inputs with
// the same key give the policy the same input, so they get the same answer.
//
// The hash is hand-written rather than sha256 over canonical JSON because a
// cache hit must cost microseconds. It is keyed by a per-engine random seed,
// so a caller cannot construct collisions, and a chance collision (2^-64)
// could only change what a list shows: every call is still decided by Decide.

// callerKey hashes the caller part of a visibility input and the policy
// identity; the listed items are added by the caller of callerKey.
func callerKey(seed maphash.Seed, in *Input, kind ListKind, revision string, generation uint64) *maphash.Hash {
	h := new(maphash.Hash)
	h.SetSeed(seed)
	writeString(h, revision)
	writeUint(h, generation)
	writeString(h, string(kind))
	writeUint(h, uint64(int64(in.Version)))

	writeString(h, in.Token.Sub)
	writeString(h, in.Token.Iss)
	writeStrings(h, in.Token.Aud)
	writeString(h, in.Token.ClientID)
	writeString(h, in.Token.Via)
	writeStrings(h, in.Token.Scopes)
	writeStrings(h, in.Token.Groups)
	writeUint(h, hashAny(seed, in.Token.Claims, 0))

	writeString(h, in.Agent.ID)
	writeString(h, in.Agent.ClientID)
	writeString(h, in.Agent.Issuer)
	writeBool(h, in.Agent.AllowClientlessTokens)
	writeBool(h, in.Agent.Enabled)
	// Absent scopes (the token's decide) and an empty list (none) are two
	// inputs with opposite decisions: their keys must differ.
	writeOptionalStrings(h, in.Agent.Scopes)
	writeStrings(h, in.Agent.BackendAccess)

	writeString(h, in.Backend.Name)
	writeString(h, in.Backend.AuthType)
	writeUint(h, hashLabels(seed, in.Backend.Labels))
	writeString(h, integrityMode(in.Backend.ToolIntegrity))

	writeString(h, in.MCP.Kind)
	writeString(h, in.MCP.Method)
	writeString(h, in.MCP.ProtocolVersion)

	writeString(h, in.HTTP.Method)
	writeString(h, in.HTTP.Path)
	writeString(h, in.HTTP.RemoteAddr)
	return h
}

// listKey is the key of Visible: the caller and the items listed in in.
func listKey(seed maphash.Seed, in *Input, kind ListKind, revision string, generation uint64) uint64 {
	h := callerKey(seed, in, kind, revision, generation)
	h.WriteByte('I')
	switch kind {
	case ListTools:
		writeTools(h, seed, in.Tools)
	case ListResources:
		writeResources(h, in.Resources)
	case ListPrompts:
		writePrompts(h, seed, in.Prompts)
	}
	return h.Sum64()
}

// writeTools, writeResources and writePrompts hash catalog entries: every
// field the input carries of them (toolList, resourceList, promptList).
func writeTools(h *maphash.Hash, seed maphash.Seed, tools []Tool) {
	writeUint(h, uint64(len(tools)))
	for i := range tools {
		t := &tools[i]
		writeString(h, t.Name)
		writeUint(h, hashAny(seed, t.Annotations, 0))
		writeString(h, t.Title)
		writeString(h, t.Description)
		writeUint(h, hashAny(seed, t.InputSchema, 0))
		writeBool(h, t.OutputSchema != nil)
		writeUint(h, hashAny(seed, t.OutputSchema, 0))
		writeIntegrity(h, t.Integrity)
	}
}

func writeResources(h *maphash.Hash, resources []Resource) {
	writeUint(h, uint64(len(resources)))
	for _, r := range resources {
		writeString(h, r.URI)
		writeString(h, r.Name)
		writeString(h, r.Description)
		writeIntegrity(h, r.Integrity)
	}
}

func writePrompts(h *maphash.Hash, seed maphash.Seed, prompts []Prompt) {
	writeUint(h, uint64(len(prompts)))
	for _, p := range prompts {
		writeString(h, p.Name)
		writeString(h, p.Title)
		writeString(h, p.Description)
		writeUint(h, hashAny(seed, p.Arguments, 0))
		writeIntegrity(h, p.Integrity)
	}
}

func writeIntegrity(h *maphash.Hash, in *Integrity) {
	writeBool(h, in != nil)
	if in != nil {
		writeString(h, in.Status)
		writeStrings(h, in.Changed)
		writeBool(h, in.Rejected)
	}
}

// catalogKey is the key of VisibleCatalog: the caller and the catalog's
// digest (which covers the catalog's items).
func catalogKey(seed maphash.Seed, in *Input, c *Catalog, revision string, generation uint64) uint64 {
	h := callerKey(seed, in, c.kind, revision, generation)
	h.WriteByte('C')
	h.Write(c.digest[:])
	return h.Sum64()
}

// hashAny hashes a JSON-shaped value. Maps are hashed independently of Go's
// random iteration order: entry hashes are summed. Anything else is hashed
// as its JSON encoding, which is what the policy input is made of.
func hashAny(seed maphash.Seed, v any, depth int) uint64 {
	const (
		tagNull = iota + 1
		tagFalse
		tagTrue
		tagString
		tagNumber
		tagArray
		tagObject
		tagOther
	)
	if depth > 64 {
		// Deeper than this the value is hashed as its JSON encoding (maps
		// in key order): slower, but exact. A constant here once made two
		// arguments that differ only below 64 levels (ijson reads 128)
		// one decision cache key.
		b, err := json.Marshal(v)
		if err != nil {
			return mix(tagOther, 1)
		}
		return mix(tagOther+1, maphash.Bytes(seed, b))
	}
	switch x := v.(type) {
	case nil:
		return tagNull
	case bool:
		if x {
			return tagTrue
		}
		return tagFalse
	case string:
		return mix(tagString, maphash.String(seed, x))
	case float64:
		return mix(tagNumber, math.Float64bits(x))
	case int:
		return mix(tagNumber, math.Float64bits(float64(x)))
	case int64:
		return mix(tagNumber, math.Float64bits(float64(x)))
	case json.Number:
		return mix(tagNumber+tagOther, maphash.String(seed, string(x)))
	case []string:
		h := uint64(tagArray)
		for _, s := range x {
			h = mix(h, mix(tagString, maphash.String(seed, s)))
		}
		return mix(h, uint64(len(x)))
	case []any:
		h := uint64(tagArray)
		for _, e := range x {
			h = mix(h, hashAny(seed, e, depth+1))
		}
		return mix(h, uint64(len(x)))
	case map[string]any:
		var sum uint64
		for k, e := range x {
			sum += mix(maphash.String(seed, k), hashAny(seed, e, depth+1))
		}
		return mix(mix(tagObject, sum), uint64(len(x)))
	default:
		b, err := json.Marshal(x)
		if err != nil {
			// Such a value also fails input building, so the query errors
			// and nothing is cached under this key.
			return mix(tagOther, 1)
		}
		return mix(tagOther, maphash.Bytes(seed, b))
	}
}

func hashLabels(seed maphash.Seed, labels map[string]string) uint64 {
	var sum uint64
	for k, v := range labels {
		sum += mix(maphash.String(seed, k), maphash.String(seed, v))
	}
	return mix(sum, uint64(len(labels)))
}

// mix combines two 64-bit values (a multiply-xorshift step).
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a^0x9e3779b97f4a7c15, b^0xc2b2ae3d27d4eb4f)
	return hi ^ lo
}

func writeString(h *maphash.Hash, s string) {
	writeUint(h, uint64(len(s)))
	h.WriteString(s)
}

func writeStrings(h *maphash.Hash, list []string) {
	writeUint(h, uint64(len(list)))
	for _, s := range list {
		writeString(h, s)
	}
}

// writeOptionalStrings is writeStrings for a list whose absence (nil)
// means something else than its being empty.
func writeOptionalStrings(h *maphash.Hash, list []string) {
	writeBool(h, list != nil)
	writeStrings(h, list)
}

func writeBool(h *maphash.Hash, b bool) {
	if b {
		h.WriteByte('t')
	} else {
		h.WriteByte('f')
	}
}

func writeUint(h *maphash.Hash, n uint64) {
	var b [8]byte
	for i := range b {
		b[i] = byte(n >> (8 * i))
	}
	h.Write(b[:])
}

// cacheCost approximates the bytes a cached name set holds, so the cache
// bound is a memory bound.
func cacheCost(names map[string]bool) int64 {
	cost := int64(64)
	for n := range names {
		cost += int64(len(n)) + 48
	}
	return cost
}

// sortedNames lists a name set in order, for records, output and tests.
func sortedNames(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
