package integrity

// Status is an item's classification against its pin.
type Status string

const (
	// StatusApproved: the definition is the approved one.
	StatusApproved Status = "approved"
	// StatusNew: nothing was ever approved for this item.
	StatusNew Status = "new"
	// StatusChanged: another definition was approved for this item.
	StatusChanged Status = "changed"
)

// Pin is what the gateway knows of one item's approval: the approved and the
// rejected definition (their hashes; "" when none) and the approved body,
// to say which fields changed.
type Pin struct {
	ApprovedHash string
	ApprovedBody []byte
	RejectedHash string
}

// Result is the classification of one definition.
type Result struct {
	Status Status
	// Changed names the fields that differ from the approved definition
	// (StatusChanged only).
	Changed []string
	// Rejected: an administrator rejected exactly this definition.
	Rejected bool
}

// Classify compares def with its pin.
func Classify(def Definition, pin Pin) Result {
	r := Result{Rejected: pin.RejectedHash != "" && pin.RejectedHash == def.Hash}
	switch {
	case pin.ApprovedHash == def.Hash:
		r.Status, r.Rejected = StatusApproved, false
	case pin.ApprovedHash == "":
		r.Status = StatusNew
	default:
		r.Status = StatusChanged
		r.Changed = Changed(def.Kind, pin.ApprovedBody, def.Body)
	}
	return r
}
