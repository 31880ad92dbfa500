package remote

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// The listings in testdata/listings were captured with curl from real servers
// on 127.0.0.1, all serving the same directory: dirs "lenet", "alexnet",
// "a model with spaces", "100%pure", "caffé", a 70-byte name, a symlink
// "linked -> lenet" and a file "master.json.bak".
//
//	python3-http-server.html     python3 -m http.server (Python 3.11.7), port 18931, /
//	apache-fancy-htmltable.html  Apache 2.4.71 (Debian), port 18932, /store/,
//	                             IndexOptions FancyIndexing HTMLTable (upstream
//	                             default NameWidth: text truncated to 23 bytes)
//	apache-fancy-pre.html        same, /pre/, IndexOptions FancyIndexing (<pre>)
//	apache-debian-default.html   same, /debian/, Debian's autoindex.conf options
//	                             (VersionSort, NameWidth=*)
//	apache-plain.html            same, /plain/, no IndexOptions (<ul> list)
//	nginx-autoindex.html         nginx 1.22.1 autoindex on, port 18933, /store/
//	nginx-autoindex-root.html    same, / (nginx shows "../" even at the root)
//	nginx-403-error.html         nginx's 403 page (before the dir was readable)

const longName = "a-very-long-model-name-that-exceeds-fifty-characters-and-more-xxxxxxxx"

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseListingCaptured(t *testing.T) {
	// Name order as each server sorts it.
	sorted := []string{"100%pure", "a model with spaces", longName, "alexnet", "caffé", "lenet", "linked"}
	versionSorted := []string{"100%pure", longName, "alexnet", "a model with spaces", "caffé", "lenet", "linked"}
	tests := []struct {
		file string
		base string
		want []string
	}{
		// The symlink's text is "linked@", its href "linked/".
		{"python3-http-server.html", "http://127.0.0.1:18931/", sorted},
		// A base without its trailing slash is treated as a directory.
		{"python3-http-server.html", "http://127.0.0.1:18931", sorted},
		// Parent Directory is href="/", sort links are "?C=N;O=D"; the long
		// name's text is "a-very-long-model-na..&gt;".
		{"apache-fancy-htmltable.html", "http://127.0.0.1:18932/store/", sorted},
		{"apache-fancy-pre.html", "http://127.0.0.1:18932/pre/", sorted},
		{"apache-debian-default.html", "http://127.0.0.1:18932/debian/", versionSorted},
		// Link text has a leading space: " lenet/".
		{"apache-plain.html", "http://127.0.0.1:18932/plain/", sorted},
		// "../" first; the long name's text is cut to 47 bytes + "..&gt;".
		{"nginx-autoindex.html", "http://127.0.0.1:18933/store/", sorted},
		{"nginx-autoindex-root.html", "http://127.0.0.1:18933/", sorted},
		// The same page seen through another base path: links are relative.
		{"nginx-autoindex.html", "http://127.0.0.1:18933/team/", sorted},
		{"nginx-403-error.html", "http://127.0.0.1:18933/", nil},
		// Absolute links only go where they point: Apache's "/" parent link
		// is the root itself, not a child of it.
		{"apache-fancy-htmltable.html", "http://127.0.0.1:18932/", sorted},
	}
	for _, tt := range tests {
		t.Run(tt.file+" "+tt.base, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "listings", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ParseListing(f, mustURL(t, tt.base))
			if err != nil {
				t.Fatalf("ParseListing: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseListing =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestParseListingSynthetic(t *testing.T) {
	const root = "http://127.0.0.1:8001/"
	const team = "http://127.0.0.1:8001/team/"
	tests := []struct {
		name string
		base string
		body string
		want []string
	}{
		{"empty body", root, "", nil},
		{"no links", root, "<html><body><p>nothing here</p></body></html>", nil},
		{"plain", root, `<a href="lenet/">x</a><a href="alexnet/">y</a>`, []string{"lenet", "alexnet"}},
		{"text is ignored", root, `<a href="lenet/">alexnet/</a><td>googlenet/</td>`, []string{"lenet"}},
		{"dot slash prefix", root, `<a href="./lenet/">lenet/</a>`, []string{"lenet"}},
		{"absolute path", root, `<a href="/lenet/">lenet/</a>`, []string{"lenet"}},
		{"absolute URL same host", root, `<a href="http://127.0.0.1:8001/lenet/">lenet/</a>`, []string{"lenet"}},
		{"absolute URL host case", root, `<a href="HTTP://127.0.0.1:8001/lenet/">lenet/</a>`, []string{"lenet"}},
		{"absolute URL other host", root, `<a href="http://otherhost/x/">x/</a><a href="http://127.0.0.1:8002/y/">y/</a>`, nil},
		{"scheme-relative other host", root, `<a href="//otherhost/x/">x/</a>`, nil},
		{"other scheme", root, `<a href="https://127.0.0.1:8001/x/">x/</a><a href="mailto:a@b/">m</a><a href="javascript:x/">j</a>`, nil},
		{"opaque same scheme", root, `<a href="http:lenet/">lenet/</a>`, nil},
		{"userinfo", root, `<a href="http://u@127.0.0.1:8001/x/">x/</a>`, nil},
		{"root link", root, `<a href="/">/</a>`, nil},
		{"parent", root, `<a href="../">../</a><a href="..">..</a>`, nil},
		{"self", root, `<a href="./">./</a><a href=".">.</a><a href="">empty</a>`, nil},
		{"query links", root, `<a href="?C=N;O=D">Name</a><a href="lenet/?x=1">q</a><a href="lenet/?">q</a>`, nil},
		{"fragments", root, `<a href="#x">x</a><a href="lenet/#top">f</a><a href="lenet/#">f</a>`, nil},
		{"files", root, `<a href="master.json">m</a><a href="lenet">no slash</a><a href="lenet/info.json">f</a>`, nil},
		{"nested", root, `<a href="a/b/">a/b/</a><a href="/a/b/">a/b/</a>`, nil},
		{"double slash", root, `<a href="a//">a//</a><a href="//">//</a>`, nil},
		{"encoded dots", root, `<a href="%2e%2e/">..</a><a href="%2E/">.</a><a href="%2e%2e%2f/">x</a>`, nil},
		{"encoded slash", root, `<a href="a%2Fb/">a/b</a><a href="a%2fb/">a/b</a><a href="%2F/">/</a>`, nil},
		{"encoded NUL", root, `<a href="a%00b/">x</a>`, nil},
		{"bad escape", root, `<a href="100%pure/">x</a><a href="%zz/">x</a>`, nil},
		{"dot segments resolve", root, `<a href="a/../lenet/">x</a><a href="./a/./../alexnet/">y</a>`, []string{"lenet", "alexnet"}},
		{"unescape", root, `<a href="my%20model/">x</a><a href="caff%C3%A9/">y</a><a href="100%25pure/">z</a>`,
			[]string{"my model", "caffé", "100%pure"}},
		{"unescaped space and unicode", root, `<a href="my model/">x</a><a href="caffé/">y</a>`, []string{"my model", "caffé"}},
		{"plus is literal", root, `<a href="a+b/">a b</a>`, []string{"a+b"}},
		{"entities in href", root, `<a href="a&amp;b/">a&amp;b/</a><a href="c&#x20;d/">x</a>`, []string{"a&b", "c d"}},
		{"surrounding whitespace", root, "<a href=\" lenet/\n\">x</a><a href=\"\talexnet/ \">y</a>", []string{"lenet", "alexnet"}},
		{"long name not truncated", root, `<a href="` + longName + `/">a-very-long-model-na..&gt;</a>`, []string{longName}},
		{"symlink text", root, `<li><a href="linked/">linked@</a></li>`, []string{"linked"}},
		{"dedup keeps first", root, `<a href="b/">b</a><a href="a/">a</a><a href="./b/">b</a><a href="%62/">b</a>`, []string{"b", "a"}},
		{"uppercase tags", root, `<A HREF="lenet/">lenet/</A>`, []string{"lenet"}},
		{"unquoted and single quoted", root, `<a href=lenet/>x</a><a href='alexnet/'>y</a>`, []string{"lenet", "alexnet"}},
		{"self-closing", root, `<a href="lenet/"/>`, []string{"lenet"}},
		{"first href wins", root, `<a href="lenet/" href="alexnet/">x</a>`, []string{"lenet"}},
		{"href on other tags", root, `<link href="css/"><area href="x/"><base href="/other/"><img src="img/">`, nil},
		{"a without href", root, `<a name="lenet/">lenet/</a><a id="x">y/</a>`, nil},
		{"comment", root, `<!-- <a href="hidden/">hidden/</a> --><a href="lenet/">x</a>`, []string{"lenet"}},
		{"script raw text", root, `<script>var s = '<a href="js/">';</script><a href="lenet/">x</a>`, []string{"lenet"}},
		{"garbage", root, "\x00\xff\xfe<<<>>>&&&;;<a <a href=<a href=\"lenet/\">\"</a>", nil},
		{"unterminated tag", root, `<a href="lenet/">lenet/</a><a href="alexnet/`, []string{"lenet"}},
		{"unterminated attribute list", root, `<a href="lenet/">lenet/</a><a href="alexnet/"`, []string{"lenet"}},
		{"unclosed anchors", root, `<a href="lenet/">lenet<a href="alexnet/">alexnet<table><td>`, []string{"lenet", "alexnet"}},
		{"base path keeps own children", team, `<a href="/team/lenet/">l</a><a href="/other/x/">x</a><a href="alexnet/">a</a>`,
			[]string{"lenet", "alexnet"}},
		{"base path skips parent and itself", team, `<a href="/">/</a><a href="../">..</a><a href="/team/">t</a><a href="/team/a/b/">n</a>`, nil},
		{"base path absolute URL", team, `<a href="http://127.0.0.1:8001/team/lenet/">l</a><a href="http://127.0.0.1:8001/lenet/">x</a>`,
			[]string{"lenet"}},
		{"base path parent then back", team, `<a href="../team/lenet/">l</a><a href="../other/x/">x</a>`, []string{"lenet"}},
		{"escaped base path", "http://127.0.0.1:8001/caff%C3%A9/", `<a href="/caff%c3%a9/lenet/">l</a><a href="/caffé/alexnet/">a</a>`,
			[]string{"lenet", "alexnet"}},
		{"base path with encoded slash", "http://127.0.0.1:8001/a%2Fb/", `<a href="/a/b/lenet/">x</a><a href="/a%2fb/alexnet/">a</a>`,
			[]string{"alexnet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseListing(strings.NewReader(tt.body), mustURL(t, tt.base))
			if err != nil {
				t.Fatalf("ParseListing: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseListing(%q) =\n%q\nwant\n%q", tt.body, got, tt.want)
			}
		})
	}
}

// repeatReader yields n bytes of b, forever repeated.
type repeatReader struct {
	b byte
	n int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n)]
	for i := range p {
		p[i] = r.b
	}
	r.n -= int64(len(p))
	return len(p), nil
}

func TestParseListingSizeLimit(t *testing.T) {
	base := mustURL(t, "http://127.0.0.1:8001/")
	head := `<a href="lenet/">lenet/</a>`
	tests := []struct {
		name    string
		size    int64
		tooBig  bool
		wantErr bool
	}{
		{"exactly the limit", maxListingBytes, false, false},
		{"one byte over", maxListingBytes + 1, true, true},
		{"far over", 3 * maxListingBytes, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := io.MultiReader(strings.NewReader(head), &repeatReader{b: ' ', n: tt.size - int64(len(head))})
			got, err := ParseListing(body, base)
			if errors.Is(err, ErrTooLarge) != tt.tooBig || (err != nil) != tt.wantErr {
				t.Fatalf("ParseListing: err = %v, want too large %v", err, tt.tooBig)
			}
			if err != nil {
				if got != nil {
					t.Errorf("ParseListing = %q with error", got)
				}
				return
			}
			if !slices.Equal(got, []string{"lenet"}) {
				t.Errorf("ParseListing = %q, want [lenet]", got)
			}
		})
	}
}

func TestParseListingNameLimit(t *testing.T) {
	base := mustURL(t, "http://127.0.0.1:8001/")
	listing := func(n int) io.Reader {
		var b bytes.Buffer
		for i := range n {
			fmt.Fprintf(&b, "<a href=\"m%d/\">m%d/</a>\n", i, i)
			// Duplicates do not count towards the limit.
			fmt.Fprintf(&b, "<a href=\"./m%d/\">m%d/</a>\n", i, i)
		}
		return &b
	}
	got, err := ParseListing(listing(maxListingNames), base)
	if err != nil {
		t.Fatalf("%d names: %v", maxListingNames, err)
	}
	if len(got) != maxListingNames || got[0] != "m0" || got[len(got)-1] != fmt.Sprintf("m%d", maxListingNames-1) {
		t.Errorf("%d names: got %d, first %q, last %q", maxListingNames, len(got), got[0], got[len(got)-1])
	}
	got, err = ParseListing(listing(maxListingNames+1), base)
	if !errors.Is(err, ErrTooLarge) || got != nil {
		t.Errorf("%d names: got %d names, err %v; want ErrTooLarge", maxListingNames+1, len(got), err)
	}
}

func TestParseListingReadError(t *testing.T) {
	errBoom := errors.New("boom")
	body := io.MultiReader(strings.NewReader(`<a href="lenet/">lenet/</a>`), iotest.ErrReader(errBoom))
	got, err := ParseListing(body, mustURL(t, "http://127.0.0.1:8001/"))
	if !errors.Is(err, errBoom) || errors.Is(err, ErrTooLarge) || got != nil {
		t.Errorf("ParseListing = %q, %v; want nil, %v", got, err, errBoom)
	}
}

var fuzzBases = []string{
	"http://127.0.0.1:8001/",
	"http://127.0.0.1:8001/team/",
	"https://example.com/a%2Fb/caff%C3%A9/",
}

func FuzzParseListing(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "listings", "*.html"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no captured listings: %v", err)
	}
	for i, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint8(i))
	}
	for i, s := range []string{
		"",
		`<a href="%2e%2e/">x</a><a href="a%2Fb/">y</a><a href="a%00/">z</a>`,
		`<a href="/team/lenet/">l</a><a href="../">p</a><a href="?C=N;O=D">s</a>`,
		`<a href="lenet/`,
	} {
		f.Add([]byte(s), uint8(i))
	}
	f.Fuzz(func(t *testing.T, body []byte, b uint8) {
		base := mustURL(t, fuzzBases[int(b)%len(fuzzBases)])
		names, err := ParseListing(bytes.NewReader(body), base)
		if err != nil {
			t.Fatalf("ParseListing: %v", err)
		}
		seen := make(map[string]bool)
		for _, n := range names {
			if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00") {
				t.Errorf("bad name %q", n)
			}
			if seen[n] {
				t.Errorf("duplicate name %q", n)
			}
			seen[n] = true
		}
	})
}
