package config

import "strings"

// Values of backends.<name>.tool_integrity: what the gateway does with the
// definitions of the tools, prompts and resource templates a backend lists
// (README, Tool integrity). Off is the default and what every backend did
// before the key existed.
const (
	// IntegrityOff keeps no pins and classifies nothing.
	IntegrityOff = "off"
	// IntegrityObserve pins, classifies, records and alerts; the shipped
	// policy hides nothing.
	IntegrityObserve = "observe"
	// IntegrityEnforce makes the shipped policy hide and refuse whatever is
	// not approved.
	IntegrityEnforce = "enforce"
	// IntegrityTrustOnFirstUse is enforce, except that the first list of a
	// kind seen for a backend with no pins of that kind is approved as seen.
	IntegrityTrustOnFirstUse = "trust_on_first_use"
)

var integrityModes = []string{IntegrityOff, IntegrityObserve, IntegrityEnforce, IntegrityTrustOnFirstUse}

// IntegrityMode is the backend's tool_integrity, "off" when unset.
func (b Backend) IntegrityMode() string {
	if b.ToolIntegrity == "" {
		return IntegrityOff
	}
	return b.ToolIntegrity
}

// Enforcing reports a mode in which unapproved definitions are held.
func (b Backend) Enforcing() bool {
	m := b.IntegrityMode()
	return m == IntegrityEnforce || m == IntegrityTrustOnFirstUse
}

func validateIntegrity(v *validator, p string, b Backend) {
	for _, m := range integrityModes {
		if b.ToolIntegrity == m || b.ToolIntegrity == "" {
			return
		}
	}
	v.addf(p+".tool_integrity", "%q: want one of %s", b.ToolIntegrity, strings.Join(integrityModes, ", "))
}
