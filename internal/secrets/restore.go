package secrets

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
)

// The admin API shows a stored agent or backend with its secrets masked
// (Mask, Tree, URL) and takes a whole object back on PUT: a client that
// edits what GET returned sends the placeholders back. What it sends in
// their place keeps the stored secret; nowhere else does Placeholder mean
// anything, so sending it where no secret is stored is refused.

// RestoreString returns the value a write keeps for a field whose whole
// value is a secret (an agent's client_secret or private_key): the stored
// secret when the client sent Placeholder, else what it sent. problem is
// set when it sent Placeholder but no secret is stored at path.
func RestoreString(path, sent, stored string) (value, problem string) {
	if sent != Placeholder {
		return sent, ""
	}
	if stored == "" {
		return sent, PlaceholderWithoutSecret(path)
	}
	return stored, ""
}

// Restore returns the value a write keeps for one sent value of a tree
// (an auth_config entry): the stored value wherever the client sent back
// exactly what GET showed for it (shown, the masked copy of stored) and the
// masking had hidden something there. kept lists the paths whose stored
// secret the write keeps without sending it; problems names each
// Placeholder sent where nothing secret is stored. Maps and lists in sent
// are updated in place.
func Restore(path string, sent, shown, stored any) (value any, kept, problems []string) {
	value = restore(path, sent, shown, stored, &kept, &problems)
	return value, kept, problems
}

func restore(path string, sent, shown, stored any, kept, problems *[]string) any {
	switch s := sent.(type) {
	case string:
		if sh, ok := shown.(string); ok && s == sh && !reflect.DeepEqual(shown, stored) {
			*kept = append(*kept, path)
			return stored
		}
		if s == Placeholder {
			*problems = append(*problems, PlaceholderWithoutSecret(path))
		}
	case map[string]any:
		shownMap, _ := shown.(map[string]any)
		storedMap, _ := stored.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(s)) {
			s[k] = restore(path+"."+k, s[k], shownMap[k], storedMap[k], kept, problems)
		}
	case []any:
		shownList, _ := shown.([]any)
		storedList, _ := stored.([]any)
		for i := range s {
			var sh, st any
			if i < len(shownList) && i < len(storedList) {
				sh, st = shownList[i], storedList[i]
			}
			s[i] = restore(fmt.Sprintf("%s[%d]", path, i), s[i], sh, st, kept, problems)
		}
	}
	return sent
}

// PlaceholderWithoutSecret is the problem reported for a Placeholder sent
// at path where no secret is stored.
func PlaceholderWithoutSecret(path string) string {
	return path + ": " + Placeholder + " stands for a stored secret, but none is stored here; send the secret itself"
}
