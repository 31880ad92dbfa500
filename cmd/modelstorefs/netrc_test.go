package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseNetrc(t *testing.T) {
	data := `# comment
machine store.example login alice password s3cret
machine other.example
  login bob
  password pw2 account x
macdef init
cd /
quit

machine after.macro login carol password pw3
default login anon password guest
machine store.example login mallory password ignored
`
	got := parseNetrc(data)
	want := map[string]netrcEntry{
		"store.example": {"alice", "s3cret"},
		"other.example": {"bob", "pw2"},
		"after.macro":   {"carol", "pw3"},
		"":              {"anon", "guest"},
	}
	if len(got) != len(want) {
		t.Fatalf("parseNetrc = %v, want %v", got, want)
	}
	for host, e := range want {
		if got[host] != e {
			t.Errorf("%q: %v, want %v", host, got[host], e)
		}
	}
}

func TestParseNetrcQuoted(t *testing.T) {
	got := parseNetrc(`machine q.example login "al ice" password "pa ss\"word#1\\" # comment
machine plain.example login bob password has#hash
machine "quoted.example" login "" password x
machine hash.example login "#dan" password "#pw" # login ignored
`)
	want := map[string]netrcEntry{
		"q.example":      {"al ice", `pa ss"word#1\`},
		"plain.example":  {"bob", "has#hash"},
		"quoted.example": {"", "x"},
		"hash.example":   {"#dan", "#pw"},
	}
	for host, e := range want {
		if got[host] != e {
			t.Errorf("%q: %q, want %q", host, got[host], e)
		}
	}
}

func TestWithNetrc(t *testing.T) {
	path := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(path, []byte("machine 127.0.0.1 login alice password s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NETRC", path)
	specs := []storeSpec{
		{Name: "a", URL: "http://127.0.0.1:8000/"},
		{Name: "b", URL: "http://bob:pw@127.0.0.1:8001/"}, // explicit userinfo wins
		{Name: "c", URL: "http://localhost:8002/"},        // no entry
	}
	got, err := withNetrc(specs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://alice:s3cret@127.0.0.1:8000/", "http://bob:pw@127.0.0.1:8001/", "http://localhost:8002/"}
	for i := range want {
		if got[i].URL != want[i] {
			t.Errorf("%s: %q, want %q", specs[i].Name, got[i].URL, want[i])
		}
	}
	t.Setenv("NETRC", filepath.Join(t.TempDir(), "missing"))
	if got, err := withNetrc(specs); err != nil || got[0].URL != specs[0].URL {
		t.Errorf("missing netrc: %v %v", got, err)
	}
}
