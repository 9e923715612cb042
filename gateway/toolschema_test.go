package gateway

import "testing"

// A caller's fetch of a backend's tools is recent for catalogRefetch, until
// the backend announces that its tools changed.
func TestCatalogFetcherRecent(t *testing.T) {
	tests := []struct {
		name       string
		fetch      bool
		invalidate string
		want       bool
	}{
		{name: "never fetched", want: false},
		{name: "just fetched", fetch: true, want: true},
		{name: "the backend changed its tools since", fetch: true, invalidate: "notes", want: false},
		{name: "another backend changed its tools", fetch: true, invalidate: "employees", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCatalogFetcher()
			key := "notes\x00iss alice"
			if tt.fetch {
				f.fetched(key)
			}
			if tt.invalidate != "" {
				f.invalidate(tt.invalidate)
			}
			if got := f.recent("notes", key); got != tt.want {
				t.Errorf("recent = %v, want %v", got, tt.want)
			}
		})
	}
}
