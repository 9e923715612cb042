package gateway

import "testing"

func TestFederatedNamesRoundTrip(t *testing.T) {
	fc := &fedCall{sessions: federatedSession{"notes": "", "notes_v2": "", "Employees": "", "everything": ""}}
	names := []struct{ backend, name string }{{"notes", "echo"}, {"notes_v2", "echo"}, {"notes", "v2__echo"}, {"Employees", "get"}}
	for _, tc := range names {
		shown := fc.nameOut(tc.backend, tc.name)
		b, n, ok := fc.nameIn(shown)
		// notes + "__" + "v2__echo" reads as notes_v2's? No: "notes__v2__echo"
		// begins with "notes__" only ("notes_v2__" differs), so it is notes'.
		if !ok || b != tc.backend || n != tc.name {
			t.Errorf("nameIn(nameOut(%q, %q) = %q) = %q, %q, %v", tc.backend, tc.name, shown, b, n, ok)
		}
	}
	uris := []struct {
		backend, uri string
		shown        bool
	}{
		{"notes", "file:///tmp/a.txt", true},
		{"Employees", "test://static/{id}", true},
		{"everything", "demo+x.y-z:opaque", true},
		{"notes_v2", "file:///a", false}, // "_" has no place in a scheme
		{"notes", "relative/path", false},
		{"notes", "1bad:scheme", false},
		{"notes", ":empty", false},
	}
	for _, tc := range uris {
		shown, ok := fc.uriOut(tc.backend, tc.uri)
		if ok != tc.shown {
			t.Errorf("uriOut(%q, %q) shown = %v, want %v", tc.backend, tc.uri, ok, tc.shown)
			continue
		}
		if !ok {
			continue
		}
		b, u, ok := fc.uriIn(shown)
		if !ok || b != tc.backend || u != tc.uri {
			t.Errorf("uriIn(%q) = %q, %q, %v; want %q, %q", shown, b, u, ok, tc.backend, tc.uri)
		}
	}
	for _, shown := range []string{"file:///a", "mcpgw.unknown+file:///a", "mcpgw.notes+noscheme", "mcpgw.notes", "MCPGW.NOTES+file:///a-ok"} {
		b, u, ok := fc.uriIn(shown)
		if want := shown == "MCPGW.NOTES+file:///a-ok"; ok != want {
			t.Errorf("uriIn(%q) = %q, %q, %v; want ok %v", shown, b, u, ok, want)
		}
	}
	twins := &fedCall{sessions: federatedSession{"Notes": "", "notes": ""}}
	if b, _, ok := twins.uriIn("mcpgw.notes+file:///a"); ok {
		t.Errorf("uriIn with two backends of one label chose %q, want refused", b)
	}
}
