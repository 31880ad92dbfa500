package cache

import (
	"net/http"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/digits"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

// TestAuxFailure: a failing aux.json (a proxy's 502) leaves the model
// shown and importable with its aux fields unknown, not absent; after
// NegativeTTL aux.json is asked for again. Once known, a later failure
// keeps the last good aux.json.
func TestAuxFailure(t *testing.T) {
	srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
	srv.SetStatus("lenet/aux.json", http.StatusBadGateway)
	// Long enough that a loaded machine answers the second Model call
	// within it.
	const negTTL = 2 * time.Second
	e := newEnv(t, srv, Config{NegativeTTL: negTTL})
	ctx := testutil.Ctx(t)

	m, err := e.cat.Model(ctx, e.st, "lenet")
	if err != nil {
		t.Fatalf("lenet with a failing aux.json: %v", err)
	}
	if !m.Importable || !m.AuxUnknown || m.Aux != nil {
		t.Fatalf("importable %v aux unknown %v aux %v, want importable with aux unknown", m.Importable, m.AuxUnknown, m.Aux)
	}
	if _, ok := m.File(digits.StatusFile); !ok {
		t.Error("no status.pickle while aux.json fails")
	}
	if _, ok := m.File(digits.AuxFile); ok {
		t.Error("aux.json shown while it fails")
	}
	s := m.Summary()
	if f := s.Fields(); f[4] != Unknown || f[8] != "yes" {
		t.Errorf("table line %q: want dataset %s and importable yes", f, Unknown)
	}
	if again, _ := e.cat.Model(ctx, e.st, "lenet"); again != m {
		t.Error("the model was resolved again inside NegativeTTL")
	}

	srv.SetStatus("lenet/aux.json", 0)
	time.Sleep(negTTL + 50*time.Millisecond)
	m, err = e.cat.Model(ctx, e.st, "lenet")
	if err != nil || m.AuxUnknown || m.Aux == nil || m.Aux.Dataset != "MNIST" {
		t.Fatalf("after NegativeTTL with aux.json back: %+v, %v", m, err)
	}
	if _, ok := m.File(digits.AuxFile); !ok {
		t.Error("aux.json not shown once it answers")
	}

	// Fails again after a refresh: the last good aux.json is kept.
	srv.SetStatus("lenet/aux.json", http.StatusBadGateway)
	e.cat.Refresh(e.st)
	m, err = e.cat.Model(ctx, e.st, "lenet")
	if err != nil || m.AuxUnknown || m.Aux == nil || m.Aux.Dataset != "MNIST" || !m.Importable {
		t.Fatalf("refresh with aux.json failing again: %+v, %v", m, err)
	}
}
