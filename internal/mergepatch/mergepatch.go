// Package mergepatch applies JSON merge patches (RFC 7396) to JSON values
// decoded into Go's any (maps, slices, strings, float64, bool, nil).
//
// It is a dozen lines, written here rather than imported: the admin API
// needs only Apply, over values it has already decoded strictly.
package mergepatch

import "maps"

// Apply returns target with patch merged in, as RFC 7396 §2 defines it: a
// patch that is an object sets each of its members in the target (an object,
// or a new one), recursively, and a null member removes that member; any
// other patch replaces the target whole. Neither argument is modified.
func Apply(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if ok {
		t = maps.Clone(t)
	} else {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = Apply(t[k], v)
	}
	return t
}
