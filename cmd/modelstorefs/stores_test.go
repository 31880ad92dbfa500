package main

import (
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/remote"
)

func TestParseStores(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []storeSpec
	}{
		{"single URL", []string{"http://127.0.0.1:8000"},
			[]storeSpec{{"127.0.0.1_8000", "http://127.0.0.1:8000/"}}},
		{"the issue's example", []string{"http://127.0.0.1:8000,http://127.0.0.1:8001/team"},
			[]storeSpec{{"127.0.0.1_8000", "http://127.0.0.1:8000/"}, {"127.0.0.1_8001_team", "http://127.0.0.1:8001/team/"}}},
		{"spaces and empty entries", []string{"http://a/, ,http://b/,"},
			[]storeSpec{{"a", "http://a/"}, {"b", "http://b/"}}},
		{"leading comma and tabs", []string{",\thttp://a/x ,  https://b  ,,"},
			[]storeSpec{{"a_x", "http://a/x/"}, {"b", "https://b/"}}},
		{"repeated values", []string{"http://a/", "", "http://b/,http://c/"},
			[]storeSpec{{"a", "http://a/"}, {"b", "http://b/"}, {"c", "http://c/"}}},
		{"name=URL", []string{"team=http://127.0.0.1:8001/team"},
			[]storeSpec{{"team", "http://127.0.0.1:8001/team/"}}},
		{"name=URL with spaces", []string{" my store = http://a/s "},
			[]storeSpec{{"my store", "http://a/s/"}}},
		{"= in the URL path is not a name", []string{"http://h/a=b"},
			[]storeSpec{{"h_a=b", "http://h/a=b/"}}},
		{"duplicates get suffixes", []string{"http://h/,http://h/", "http://h"},
			[]storeSpec{{"h", "http://h/"}, {"h_2", "http://h/"}, {"h_3", "http://h/"}}},
		{"an explicit name wins over a derived one", []string{"http://h/, h=http://other/"},
			[]storeSpec{{"h_2", "http://h/"}, {"h", "http://other/"}}},
		{"suffix skips taken names", []string{"http://h/,h_2=http://x/,http://h/"},
			[]storeSpec{{"h", "http://h/"}, {"h_2", "http://x/"}, {"h_3", "http://h/"}}},
		{"derived reserved name", []string{"http://models.tsv/,http://error.txt:80/"},
			[]storeSpec{{"models.tsv_2", "http://models.tsv/"}, {"error.txt_2", "http://error.txt:80/"}}},
		{"credentials stay in the URL only", []string{"http://alice:pw@h/s"},
			[]storeSpec{{"h_s", "http://alice:pw@h/s/"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStores(tc.values)
			if err != nil {
				t.Fatalf("parseStores(%q): %v", tc.values, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("parseStores(%q) =\n  %q\nwant\n  %q", tc.values, got, tc.want)
			}
		})
	}
}

func TestParseStoresErrors(t *testing.T) {
	tests := []struct {
		name    string
		values  []string
		mention []string
	}{
		{"nothing", nil, []string{"DIGITS_MODEL_STORE_URL", "--store"}},
		{"empty string", []string{""}, []string{"DIGITS_MODEL_STORE_URL"}},
		{"only commas and spaces", []string{" , ,", ","}, []string{"DIGITS_MODEL_STORE_URL"}},
		{"ftp", []string{"ftp://x"}, []string{"ftp://x", "http or https"}},
		{"file", []string{"http://ok/,file:///srv/store"}, []string{"file:///srv/store", "http or https"}},
		{"named ftp", []string{"s=ftp://x/"}, []string{"ftp://x/", "http or https"}},
		{"no scheme", []string{"127.0.0.1:8000/store"}, nil},
		{"host only", []string{"example.com"}, []string{"needs http:// or https://", "http://example.com"}},
		{"query", []string{"http://h/s?x=1"}, []string{"query"}},
		{"explicit names collide", []string{"a=http://x/,a=http://y/"}, []string{`"a"`, "already used"}},
		{"explicit names collide across values", []string{"a=http://x/", "a=http://y/"}, []string{"already used"}},
		{"reserved .refresh", []string{".refresh=http://x"}, []string{".refresh"}},
		{"reserved models.tsv", []string{"models.tsv=http://x"}, []string{"models.tsv"}},
		{"reserved welcome.txt", []string{"welcome.txt=http://x"}, []string{"welcome.txt"}},
		{"reserved error.txt", []string{"error.txt=http://x"}, []string{"error.txt"}},
		{"name with a slash", []string{"a/b=http://x/"}, []string{"a/b"}},
		{"name ..", []string{"..=http://x/"}, []string{`".."`}},
		{"name .", []string{".=http://x/"}, nil},
		{"name too long", []string{strings.Repeat("n", 300) + "=http://x/"}, []string{"300"}},
		{"empty name", []string{"=http://x/"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStores(tc.values)
			if err == nil {
				t.Fatalf("parseStores(%q) = %q, want an error", tc.values, got)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("parseStores(%q) error %q does not mention %q", tc.values, err, m)
				}
			}
		})
	}
}

// Whatever the URLs, the derived names are valid directory names, distinct,
// and none is a reserved name.
func TestParseStoresNamesAlwaysUsable(t *testing.T) {
	long := "http://h/" + strings.Repeat("a", 300)
	t.Run("long URLs sharing a prefix", func(t *testing.T) {
		specs, err := parseStores([]string{long + "1", long + "2", long + "3"})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		var bad []string
		for _, s := range specs {
			if err := digits.ValidName(s.Name); err != nil {
				bad = append(bad, s.Name[:10]+"…"+s.Name[len(s.Name)-4:]+": "+err.Error())
			}
			if seen[s.Name] {
				t.Errorf("name %q used twice", s.Name)
			}
			seen[s.Name] = true
		}
		if len(bad) > 0 {
			t.Errorf("a duplicate suffix is appended after truncation to %d bytes, giving names Linux refuses: %q", digits.MaxNameLen, bad)
		}
	})
	t.Run("truncation in a multi-byte character", func(t *testing.T) {
		specs, err := parseStores([]string{"http://h/" + strings.Repeat("é", 200)})
		if err != nil {
			t.Fatal(err)
		}
		name := specs[0].Name
		if err := digits.ValidName(name); err != nil {
			t.Fatalf("name %q: %v", name, err)
		}
		if !strings.HasPrefix(name, "h_éé") {
			t.Errorf("storeDirName cuts the name at %d bytes inside a UTF-8 sequence, so the whole name falls back to %q", digits.MaxNameLen, name)
		}
	})
	t.Run("mixed", func(t *testing.T) {
		specs, err := parseStores([]string{
			"http://h/", "http://h:80/", "https://h:443", "http://h/.refresh", "http://[::1]:8000/",
			"http://[::1]:8000", "http://h/a/b", "http://h/a_b", "h_a_b_2=http://z/", "http://.refresh/",
		})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, s := range specs {
			if err := digits.ValidName(s.Name); err != nil {
				t.Errorf("store %s: name %q: %v", s.URL, s.Name, err)
			}
			if seen[s.Name] {
				t.Errorf("store %s: name %q used twice", s.URL, s.Name)
			}
			seen[s.Name] = true
			for _, r := range []string{".refresh", "models.tsv", "welcome.txt", "error.txt"} {
				if s.Name == r {
					t.Errorf("store %s: reserved name %q", s.URL, s.Name)
				}
			}
		}
	})
}

func TestStoreDirName(t *testing.T) {
	tests := []struct {
		url, want string
	}{
		{"http://127.0.0.1:8000", "127.0.0.1_8000"},
		{"http://127.0.0.1:8001/team", "127.0.0.1_8001_team"},
		{"http://127.0.0.1:8001/team/", "127.0.0.1_8001_team"},
		{"http://host/", "host"},
		{"http://host", "host"},
		{"https://host:443/a/b/", "host_a_b"},
		{"http://host:80/x", "host_x"},
		{"https://host:80/", "host_80"},
		{"http://host:443/", "host_443"},
		{"http://host//x//", "host_x"},
		{"http://user:secret@host:8080/s", "host_8080_s"},
		{"http://host/my%20store", "host_my store"},
		{"http://host/a%2Fb", "host_a_b"},
		{"http://host/a%5Cb", "host_a_b"},
		{"http://host/a%0Ab", "host_a_b"},
		{"http://host/caff%C3%A9", "host_caffé"},
	}
	for _, tc := range tests {
		u, err := remote.ParseBaseURL(tc.url)
		if err != nil {
			t.Errorf("ParseBaseURL(%q): %v", tc.url, err)
			continue
		}
		if got := storeDirName(u); got != tc.want {
			t.Errorf("storeDirName(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}

	// IPv6 literals: no brackets or colons in the name, the port kept.
	for _, tc := range []struct{ url, port string }{
		{"http://[::1]:8000/", "8000"},
		{"http://[::1]/", ""},
		{"https://[2001:db8::1]:8443/team", "8443"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		got := storeDirName(u)
		if strings.ContainsAny(got, "[]:/") || digits.ValidName(got) != nil {
			t.Errorf("storeDirName(%q) = %q", tc.url, got)
		}
		if !strings.Contains(got, "1") || (tc.port != "" && !strings.Contains(got, "_"+tc.port)) {
			t.Errorf("storeDirName(%q) = %q, want the address and port %q in it", tc.url, got, tc.port)
		}
	}

	// No credentials, ever.
	u, _ := url.Parse("http://alice:s3cret@host:8000/team/")
	if got := storeDirName(u); strings.Contains(got, "alice") || strings.Contains(got, "s3cret") {
		t.Errorf("storeDirName(%q) = %q contains credentials", u, got)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"1048576", 1048576},
		{"1", 1},
		{"100B", 100},
		{"100b", 100},
		{"1K", 1 << 10},
		{"1k", 1 << 10},
		{"1KB", 1 << 10},
		{"1KiB", 1 << 10},
		{"500M", 500 << 20},
		{"500MB", 500 << 20},
		{"500MiB", 500 << 20},
		{"500mib", 500 << 20},
		{"10G", 10 << 30},
		{"10GiB", 10 << 30},
		{" 2 GiB ", 2 << 30},
		{"1.5TB", 3 << 39},
		{"1T", 1 << 40},
		{"1.5K", 1536},
		{"0.5G", 512 << 20},
	}
	for _, tc := range tests {
		got, err := parseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}

	for _, bad := range []string{"", " ", "G", "GiB", "abc", "0", "0G", "-1", "-5M", "10X", "10 GiB extra", "1,5G", "0x10"} {
		if got, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", bad, got)
		} else if !strings.Contains(err.Error(), "positive size") {
			t.Errorf("parseSize(%q) error %q", bad, err)
		}
	}
}

// parseSize must never accept something that is not a usable positive size.
func TestParseSizeDegenerate(t *testing.T) {
	var accepted []string
	for _, in := range []string{"NaN", "Inf", "+Inf", "infinity", "1e30", "9999999999T", "0.1B", "0.0001"} {
		got, err := parseSize(in)
		if err == nil && (got <= 0 || got > math.MaxInt64/2) {
			accepted = append(accepted, in+" -> "+strconv.FormatInt(got, 10))
		}
	}
	if len(accepted) > 0 {
		t.Errorf("parseSize accepts values that are not positive sizes (float NaN/Inf/overflow or a fraction of a byte): %q", accepted)
	}
}

func TestWithin(t *testing.T) {
	tests := []struct {
		path, dir string
		want      bool
	}{
		{"/mnt/models", "/mnt/models", true},
		{"/mnt/models/cache", "/mnt/models", true},
		{"/mnt/models/a/b/c", "/mnt/models", true},
		{"/mnt/models/..cache", "/mnt/models", true},
		{"/mnt/models2", "/mnt/models", false},
		{"/mnt/model", "/mnt/models", false},
		{"/mnt", "/mnt/models", false},
		{"/", "/mnt/models", false},
		{"/home/u/.cache/modelstorefs", "/mnt/models", false},
		{"/anything", "/", true},
		{"/mnt/models/../other", "/mnt/models", false},
	}
	for _, tc := range tests {
		if got := within(tc.path, tc.dir); got != tc.want {
			t.Errorf("within(%q, %q) = %v, want %v", tc.path, tc.dir, got, tc.want)
		}
	}
}

// FuzzStoreDirName: whatever the URL, the derived directory name is one
// valid path segment.
func FuzzStoreDirName(f *testing.F) {
	for _, seed := range []string{"http://127.0.0.1:8000", "http://h/a/b/../c", "https://[::1]:443/x%2Fy", "http://h/%00", "http://u:p@h:80/"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		specs, err := parseStores([]string{raw})
		if err != nil {
			return
		}
		for _, s := range specs {
			if err := digits.ValidName(s.Name); err != nil {
				t.Fatalf("%q gave the name %q: %v", raw, s.Name, err)
			}
		}
	})
}
