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
func (v Value) AppendSorted(dst []byte) []byte {
	switch v.Kind {
	case Object:
		members := slices.Clone(v.Members)
		slices.SortStableFunc(members, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
		dst = append(dst, '{')
		for i, m := range members {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, m.Name)
			dst = append(dst, ':')
			dst = m.Value.AppendSorted(dst)
		}
		return append(dst, '}')
	case Array:
		dst = append(dst, '[')
		for i, it := range v.Items {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = it.AppendSorted(dst)
		}
		return append(dst, ']')
	}
	return v.AppendTo(dst)
}
