package engine

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/modelstorefs/modelstorefs/cache"
	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// TestAdminBesideAUser: a cache in use by a StreamContent (a mount) is
// listed by key; RemoveObjects keeps the file the user has open, removes
// the others, and the user serves both afterwards (the removed one
// downloaded again).
func TestAdminBesideAUser(t *testing.T) {
	a, b := blob(11, 70<<10), blob(12, 30<<10)
	dir := t.TempDir()
	srv, st, s := fixture(t, map[string][]byte{"m/a": a, "m/b": b}, remotetest.Options{}, StreamConfig{Dir: dir})
	refA, refB := refFor(t, st, "m", "a"), refFor(t, st, "m", "b")
	for _, ref := range []cache.Ref{refA, refB} {
		openRead(t, s, ref)
		testutil.WaitFor(t, "commit", func() bool { return committed(s, ref) })
	}

	other := refA
	other.Meta.ETag = `"another version"`
	for _, c := range []struct {
		ref              cache.Ref
		complete, cached bool
	}{{refA, true, true}, {refB, true, true}, {other, false, false}} {
		if complete, cached := s.CacheState(c.ref); complete != c.complete || cached != c.cached {
			t.Errorf("CacheState(%s %s) = %v %v, want %v %v", c.ref.Name, c.ref.Meta.ETag, complete, cached, c.complete, c.cached)
		}
	}

	objs, err := ListObjects(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int64{}
	for _, o := range objs {
		keys[o.Key] = o.Size
		if o.SHA256 == "" || o.Verified != "computed" {
			t.Errorf("%s: sha256 %q verified %q", o.Key, o.SHA256, o.Verified)
		}
	}
	if len(objs) != 2 || keys[refA.Key()] != int64(len(a)) || keys[refB.Key()] != int64(len(b)) {
		t.Fatalf("ListObjects = %+v, want a and b by their keys", objs)
	}
	if !HasObject(dir, refA.Key()) || HasObject(dir, other.Key()) {
		t.Errorf("HasObject: a %v, another version %v", HasObject(dir, refA.Key()), HasObject(dir, other.Key()))
	}
	act, err := CacheActivity(dir)
	if err != nil || act.Processes != 1 {
		t.Errorf("CacheActivity = %+v, %v; want the one StreamContent", act, err)
	}

	h, err := s.Open(testutil.Ctx(t), refA) // a reader of a, as a mount's open file
	if err != nil {
		t.Fatal(err)
	}
	removed, kept, err := RemoveObjects(objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].Key != refB.Key() || len(kept) != 1 || kept[0].Key != refA.Key() {
		t.Fatalf("removed %+v, kept %+v: want b removed, a (open) kept", removed, kept)
	}
	if !bytes.Equal(storetest.ReadAll(t, h), a) {
		t.Error("the open file's reader read other bytes")
	}
	h.Close()
	if left, _ := ListObjects(dir); len(left) != 1 || left[0].Key != refA.Key() {
		t.Errorf("left %+v, want a", left)
	}
	if !bytes.Equal(openRead(t, s, refB), b) {
		t.Error("the removed file read back other bytes")
	}
	if n := srv.Count("GET", "m/b"); n != 2 {
		t.Errorf("%d GETs of b, want 2 (downloaded again after its removal)", n)
	}

	// Nothing there yet: no error, nothing listed.
	if objs, err := ListObjects(t.TempDir()); err != nil || len(objs) != 0 {
		t.Errorf("empty cache dir: %v %v", objs, err)
	}
	if act, err := CacheActivity(t.TempDir()); err != nil || act != (Activity{}) {
		t.Errorf("empty cache dir: %+v %v", act, err)
	}
	gone := []CacheObject{{Key: "k", Path: filepath.Join(t.TempDir(), "k")}}
	if removed, kept, err := RemoveObjects(gone); err != nil || len(removed) != 1 || len(kept) != 0 {
		t.Errorf("removing a file already gone: removed %v kept %v err %v", removed, kept, err)
	}
}
