package storetest

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

func TestSampleFiles(t *testing.T) {
	all := SampleFiles(t)
	if _, ok := all["master.json"]; !ok {
		t.Error("SampleFiles(t) has no master.json")
	}
	bare := SampleFiles(t, WithoutMaster())
	if _, ok := bare["master.json"]; ok {
		t.Error("SampleFiles(t, WithoutMaster()) has master.json")
	}
	if len(bare) != len(all)-1 {
		t.Errorf("WithoutMaster left %d files of %d", len(bare), len(all))
	}
	want := []string{"alexnet-torch", "broken", "inception-tf", "lenet"}
	if got := SampleModels(t); !slices.Equal(got, want) {
		t.Errorf("SampleModels %q, want %q", got, want)
	}
}

func TestServerAndRemote(t *testing.T) {
	files := map[string][]byte{"m/info.json": []byte(`{"name": "m"}`)}
	srv := NewServer(t, files, remotetest.Options{Master: true})
	rs := Remote(t, srv.URL)
	l, err := rs.ListModels(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.Models, []string{"m"}) {
		t.Errorf("ListModels %q, want [m]", l.Models)
	}
}

// bytesReader is a Reader over a byte slice.
type bytesReader []byte

func (b bytesReader) Size() int64 { return int64(len(b)) }
func (b bytesReader) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	return bytes.NewReader(b).ReadAt(p, off)
}

func TestReadAll(t *testing.T) {
	want := []byte("the whole handle")
	if got := ReadAll(t, bytesReader(want)); !bytes.Equal(got, want) {
		t.Errorf("ReadAll %q, want %q", got, want)
	}
	if got := ReadAll(t, bytesReader(nil)); len(got) != 0 {
		t.Errorf("ReadAll of an empty handle: %q", got)
	}
}
