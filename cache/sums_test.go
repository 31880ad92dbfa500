package cache

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
	"github.com/modelstorefs/modelstorefs/remote"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// sumsOf writes a SHA256SUMS for the files below model, with wrong[name]
// replacing the digest of that file.
func sumsOf(files map[string][]byte, model string, wrong map[string]bool) []byte {
	var lines []string
	for p, data := range files {
		name, ok := strings.CutPrefix(p, model+"/")
		if !ok {
			continue
		}
		if wrong[name] {
			data = append([]byte("not "), data...)
		}
		lines = append(lines, fmt.Sprintf("%x  %s", sha256.Sum256(data), p))
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n")
}

// TestSums: a store's SHA256SUMS gives the files of its models their
// digests (read once per listing, beside master.json, and asked again
// conditionally); a wrong line for info.json fails the model with a
// digest mismatch; a wrong line for another file is that file's digest
// (refused when read: engine); a store without one gives none.
func TestSums(t *testing.T) {
	const weights = "snapshot_iter_28140.caffemodel"
	for _, tc := range []struct {
		name    string
		sums    bool
		wrong   map[string]bool
		wantErr error
	}{
		{"right", true, nil, nil},
		{"wrong weights line", true, map[string]bool{weights: true}, nil},
		{"wrong info.json line", true, map[string]bool{digits.InfoFile: true}, remote.ErrDigestMismatch},
		{"none", false, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := storetest.SampleFiles(t)
			if tc.sums {
				files[remote.SumsFile] = sumsOf(files, "lenet", tc.wrong)
			}
			srv := storetest.NewServer(t, files, remotetest.Options{})
			e := newEnv(t, srv, Config{})
			ctx := testutil.Ctx(t)
			if _, err := e.cat.Listing(ctx, e.st); err != nil {
				t.Fatal(err)
			}
			// info.json is checked against the sums known when it is read.
			if tc.sums && e.cat.sumsOf(e.st, true) == nil {
				t.Fatal("no sums after the listing")
			}
			m, err := e.cat.Model(ctx, e.st, "lenet")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Model: %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var f *File // the weights as DIGITS names them
			for i, ff := range m.Files() {
				if ff.Remote == weights {
					f = &m.Files()[i]
				}
			}
			if f == nil {
				t.Fatalf("no file is the store's %s in %q", weights, fileNames(m))
			}
			want := remote.Digest{}
			if tc.sums {
				data, _ := srv.Data("lenet/" + weights)
				if tc.wrong[weights] {
					data = append([]byte("not "), data...)
				}
				sum := sha256.Sum256(data)
				want = remote.Digest{Alg: remote.AlgSHA256, Sum: string(sum[:])}
			}
			if f.Meta.Digest != want {
				t.Errorf("%s digest %s, want %s", weights, f.Meta.Digest, want)
			}
			// The next listing asks again, conditionally, and keeps them.
			e.cat.Refresh(e.st)
			if _, err := e.cat.Listing(ctx, e.st); err != nil {
				t.Fatal(err)
			}
			e.cat.sumsOf(e.st, true)
			if got := srv.Count("GET", remote.SumsFile); got != 2 {
				t.Errorf("%d GETs of %s after two listings, want 2", got, remote.SumsFile)
			}
			if got := e.cat.sumsOf(e.st, true) != nil; got != tc.sums {
				t.Errorf("after a second listing: sums %v, want %v", got, tc.sums)
			}
		})
	}
}

// TestMirrors: the files of other stores with a file's digest are found
// in their SHA256SUMS and in the same model resolved with that digest;
// the file's own store and files of other digests are not.
func TestMirrors(t *testing.T) {
	const weights = "snapshot_iter_28140.caffemodel"
	files := storetest.SampleFiles(t)
	data := files["lenet/"+weights]
	sum := sha256.Sum256(data)
	d := remote.Digest{Alg: remote.AlgSHA256, Sum: string(sum[:])}
	// Store b has the weights under another model's name, in its sums.
	filesB := map[string][]byte{"master.json": []byte(`{"children": ["copy"]}`), "copy/w.caffemodel": data,
		"copy/info.json": files["lenet/info.json"]}
	filesB[remote.SumsFile] = sumsOf(filesB, "copy", nil)
	a := storetest.NewServer(t, files, remotetest.Options{})
	b := storetest.NewServer(t, filesB, remotetest.Options{})
	stA, stB := newTestStore(t, a.URL), newTestStore(t, b.URL)
	stB.Name = "b"
	content := newMemContent()
	cat := NewCatalog([]*Store{stA, stB}, content, Config{Reserved: storetest.Reserved})
	t.Cleanup(func() {
		cat.Close()
		content.Close()
	})
	ctx := testutil.Ctx(t)
	for _, st := range []*Store{stA, stB} {
		if _, err := cat.Listing(ctx, st); err != nil {
			t.Fatal(err)
		}
		cat.sumsOf(st, true)
	}
	ref := Ref{Store: stA, Model: "lenet", Name: weights, Meta: remote.Meta{Size: int64(len(data)), Digest: d}}
	got := cat.mirrors(ref)
	if len(got) != 1 || got[0].Store != stB || got[0].Model != "copy" || got[0].Name != "w.caffemodel" || got[0].Meta.Size != ref.Meta.Size {
		t.Fatalf("mirrors of lenet's weights: %+v, want b's copy/w.caffemodel", got)
	}
	other := ref
	other.Meta.Digest = remote.Digest{Alg: remote.AlgSHA256, Sum: strings.Repeat("x", 32)}
	if got := cat.mirrors(other); len(got) != 0 {
		t.Errorf("mirrors of another digest: %+v, want none", got)
	}
	if got := cat.mirrors(Ref{Store: stA, Model: "lenet", Name: weights}); len(got) != 0 {
		t.Errorf("mirrors of a file without a digest: %+v, want none", got)
	}
}
