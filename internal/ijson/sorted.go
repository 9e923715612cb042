package ijson

import (
	"cmp"
	"slices"
)

// AppendSorted appends the encoding of v with every object's members sorted
// by name (byte order of their UTF-8), at every depth; otherwise it is
// Encode's encoding (strings re-escaped, numbers as their literal). Two
// readings of one JSON value whose members merely come in another order
// encode alike, so a digest over it is the same on every replica and does
// not move when a backend reorders a schema's properties.
func (v Value) AppendSorted(dst []byte) []byte { return v.appendTo(dst, true) }

func sortedMembers(members []Member) []Member {
	out := slices.Clone(members)
	slices.SortStableFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
