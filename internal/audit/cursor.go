package audit

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// A cursor is the position after the last record of a page: its time and
// id, opaque to callers. It is read here rather than in the store so that a
// malformed one is reported with every other bad field of a Query.
const (
	cursorVersion  = "v1"
	maxCursorBytes = 512
)

// EncodeCursor is the cursor of the page that follows the record at
// atMicros (Unix microseconds) with id.
func EncodeCursor(atMicros int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + ":" + strconv.FormatInt(atMicros, 10) + ":" + id))
}

// DecodeCursor reads a cursor made by EncodeCursor; an error wraps
// ErrInvalidQuery and names the field.
func DecodeCursor(c string) (atMicros int64, id string, err error) {
	bad := &FieldError{Field: "cursor", Problem: "is malformed (pass next_cursor of the previous page as it is)"}
	if len(c) > maxCursorBytes {
		return 0, "", bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", bad
	}
	parts := strings.SplitN(string(raw), ":", 3)
	if len(parts) != 3 || parts[0] != cursorVersion || parts[2] == "" {
		return 0, "", bad
	}
	at, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return 0, "", bad
	}
	return at, parts[2], nil
}
