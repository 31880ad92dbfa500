package cache

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelstorefs/modelstorefs/remote/remotetest"

	"github.com/modelstorefs/modelstorefs/digits"

	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
)

func TestListingSharedFetch(t *testing.T) {
	srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
	e := newEnv(t, srv, Config{})
	ctx := testutil.Ctx(t)

	// Hold master.json so that all callers pile up on the one fetch.
	gate := srv.Hold("master.json")
	const callers = 50
	var wg sync.WaitGroup
	results := make([]*StoreListing, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.cat.Listing(ctx, e.st)
		}()
	}
	select {
	case <-gate.Arrived():
	case <-ctx.Done():
		t.Fatal("master.json was never requested")
	}
	testutil.WaitFor(t, "every caller to join the fetch", func() bool { return e.cat.waiters.Load() == callers })
	gate.Release()
	wg.Wait()

	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if results[i] != results[0] {
			t.Fatalf("caller %d got another listing than caller 0", i)
		}
	}
	if n := srv.Count("GET", "master.json"); n != 1 {
		t.Errorf("master.json fetched %d times by %d concurrent callers, want 1", n, callers)
	}
	l := results[0]
	if !slices.Equal(l.Models, storetest.SampleModels(t)) {
		t.Errorf("models %q, want %q", l.Models, storetest.SampleModels(t))
	}
	if l.Msg != "modelstorefs sample store" || l.Stale != nil || l.Fetched.IsZero() {
		t.Errorf("listing %+v", l)
	}

	// Within the TTL: served from memory, no request at all for the list.
	for range 5 {
		l2, err := e.cat.Listing(ctx, e.st)
		if err != nil || l2 != l {
			t.Fatalf("cached Listing: %p %v, want %p", l2, err, l)
		}
	}
	if c, ok := e.cat.CachedListing(e.st); !ok || c != l {
		t.Errorf("CachedListing = %p %v", c, ok)
	}
	if n := srv.Count("", "master.json") + srv.Count("", ""); n != 1 {
		t.Errorf("%d requests for the list after cached calls, want 1", n)
	}
}

func TestListingExpiresAfterTTL(t *testing.T) {
	srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
	e := newEnv(t, srv, Config{TTL: 150 * time.Millisecond})
	ctx := testutil.Ctx(t)
	if _, err := e.cat.Listing(ctx, e.st); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.Listing(ctx, e.st); err != nil {
		t.Fatal(err)
	}
	if n := srv.Count("GET", "master.json"); n != 1 {
		t.Fatalf("master.json fetched %d times within the TTL", n)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := e.cat.Listing(ctx, e.st); err != nil {
		t.Fatal(err)
	}
	if n := srv.Count("GET", "master.json"); n != 2 {
		t.Errorf("master.json fetched %d times after the TTL, want 2", n)
	}
}

func TestListingSortedAndReserved(t *testing.T) {
	// Unsorted on the store, some with names the store folder uses itself.
	names := []string{"zeta", "lenet", "Alpha", "models.tsv", "a model", ".refresh", "100%pure", "welcome.txt", "mid"}
	want := []string{"100%pure", "Alpha", "a model", "lenet", "mid", "zeta"}
	files := map[string][]byte{}
	for _, n := range names {
		files[n+"/info.json"] = []byte("{}")
	}
	withMaster := map[string][]byte{"master.json": remotetest.MasterJSON("hi there", names...)}
	for k, v := range files {
		withMaster[k] = v
	}
	tests := []struct {
		name    string
		files   map[string][]byte
		opt     remotetest.Options
		wantMsg string // "" means the default greeting naming the base URL
	}{
		{"master.json", withMaster, remotetest.Options{}, "hi there"},
		{"master.json below a prefix", withMaster, remotetest.Options{Prefix: "/team/"}, "hi there"},
		{"html listing", files, remotetest.Options{Listing: true}, ""},
		{"html listing below a prefix", files, remotetest.Options{Listing: true, Prefix: "/team/"}, ""},
		{"invalid master.json falls back to the listing", func() map[string][]byte {
			m := map[string][]byte{"master.json": []byte("{not json")}
			for k, v := range files {
				m[k] = v
			}
			return m
		}(), remotetest.Options{Listing: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := storetest.NewServer(t, tt.files, tt.opt)
			e := newEnv(t, srv, Config{})
			l, err := e.cat.Listing(testutil.Ctx(t), e.st)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(l.Models, want) {
				t.Errorf("models %q, want %q", l.Models, want)
			}
			if !slices.IsSorted(l.Models) {
				t.Errorf("models not sorted: %q", l.Models)
			}
			for _, r := range storetest.Reserved {
				if l.Has(r) {
					t.Errorf("reserved name %q listed", r)
				}
			}
			wantMsg := tt.wantMsg
			if wantMsg == "" {
				wantMsg = "Thanks for visiting " + srv.URL
			}
			if l.Msg != wantMsg {
				t.Errorf("msg %q, want %q", l.Msg, wantMsg)
			}
			// A reserved name is refused for Model too.
			if _, err := e.cat.Model(testutil.Ctx(t), e.st, "models.tsv"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Model(models.tsv): %v, want ErrNotFound", err)
			}
		})
	}
}

func TestListingStoreDown(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		srv := remotetest.New(storetest.SampleFiles(t), remotetest.Options{})
		srv.Close()
		e := newEnv(t, srv, Config{})
		start := time.Now()
		l, err := e.cat.Listing(testutil.Ctx(t), e.st)
		if err == nil {
			t.Fatalf("listing of a closed store: %+v", l)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v to fail", d)
		}
		if !strings.Contains(err.Error(), "master.json") {
			t.Errorf("error does not name the URL: %v", err)
		}
	})

	t.Run("no answer is bounded by ListTimeout", func(t *testing.T) {
		srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
		srv.Hold("master.json")
		e := newEnv(t, srv, Config{ListTimeout: 200 * time.Millisecond})
		start := time.Now()
		_, err := e.cat.Listing(testutil.Ctx(t), e.st)
		if err == nil {
			t.Fatal("listing of a silent store succeeded")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v to fail with ListTimeout 200ms", d)
		}
	})

	t.Run("error is remembered for NegativeTTL", func(t *testing.T) {
		srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
		srv.SetStatusAll(http.StatusInternalServerError)
		const negTTL = 300 * time.Millisecond
		e := newEnv(t, srv, Config{NegativeTTL: negTTL})
		ctx := testutil.Ctx(t)
		start := time.Now()
		_, err := e.cat.Listing(ctx, e.st)
		if err == nil {
			t.Fatal("listing of a failing store succeeded")
		}
		if !strings.Contains(err.Error(), "500") {
			t.Errorf("error does not name the status: %v", err)
		}
		for range 3 {
			_, err2 := e.cat.Listing(ctx, e.st)
			if err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("second Listing: %v, want the remembered %v", err2, err)
			}
		}
		if time.Since(start) < negTTL {
			if n := srv.Count("", "master.json"); n != 1 {
				t.Errorf("master.json requested %d times inside NegativeTTL, want 1", n)
			}
		}
		if _, ok := e.cat.CachedListing(e.st); ok {
			t.Error("a failed listing is cached as good")
		}
		time.Sleep(negTTL + 50*time.Millisecond)
		srv.SetStatusAll(0)
		l, err := e.cat.Listing(ctx, e.st)
		if err != nil {
			t.Fatalf("after NegativeTTL, with the store back: %v", err)
		}
		if !slices.Equal(l.Models, storetest.SampleModels(t)) {
			t.Errorf("models %q", l.Models)
		}
		if n := srv.Count("", "master.json"); n != 2 {
			t.Errorf("master.json requested %d times, want 2", n)
		}
	})
}

func TestListingStaleWhileError(t *testing.T) {
	srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
	e := newEnv(t, srv, Config{NegativeTTL: time.Minute})
	ctx := testutil.Ctx(t)
	good, err := e.cat.Listing(ctx, e.st)
	if err != nil {
		t.Fatal(err)
	}
	e.waitPrefetched(t, storetest.SampleModels(t)...)

	before := e.cat.LastRefresh(e.st)
	time.Sleep(time.Millisecond)
	e.cat.Refresh(e.st)
	if !e.cat.LastRefresh(e.st).After(before) || !e.cat.LastRefresh(nil).Equal(before) {
		t.Errorf("LastRefresh: store %v, mount %v (before %v)", e.cat.LastRefresh(e.st), e.cat.LastRefresh(nil), before)
	}
	if _, ok := e.cat.CachedListing(e.st); ok {
		t.Fatal("Refresh left the listing cached")
	}
	srv.SetStatusAll(http.StatusInternalServerError)
	for i := range 3 {
		l, err := e.cat.Listing(ctx, e.st)
		if err != nil {
			t.Fatalf("call %d: %v, want the last good listing", i, err)
		}
		if l.Stale == nil {
			t.Fatalf("call %d: Stale not set on a listing served while the store fails", i)
		}
		if !strings.Contains(l.Stale.Error(), "500") {
			t.Errorf("Stale = %v, want the HTTP 500", l.Stale)
		}
		if !slices.Equal(l.Models, good.Models) || l.Msg != good.Msg {
			t.Errorf("stale listing %+v, want %+v", l, good)
		}
	}
	if good.Stale != nil {
		t.Error("serving stale modified the good listing")
	}
	if n := srv.Count("", "master.json"); n != 2 {
		t.Errorf("master.json requested %d times, want 2 (one good, one failed, then remembered)", n)
	}

	// The store comes back: a refresh gives a fresh listing again.
	srv.SetStatusAll(0)
	e.cat.Refresh(nil)
	l, err := e.cat.Listing(ctx, e.st)
	if err != nil || l.Stale != nil {
		t.Fatalf("after recovery: %+v %v", l, err)
	}
}

func TestPrefetchAfterListing(t *testing.T) {
	files := storetest.SampleFiles(t)
	srv := storetest.NewServer(t, files, remotetest.Options{})
	e := newEnv(t, srv, Config{})
	if _, err := e.cat.Listing(testutil.Ctx(t), e.st); err != nil {
		t.Fatal(err)
	}
	// No Model call: the listing alone resolves every model.
	e.waitPrefetched(t, storetest.SampleModels(t)...)
	for _, m := range storetest.SampleModels(t) {
		for _, f := range []string{digits.InfoFile, digits.AuxFile} {
			if n := srv.Count("GET", m+"/"+f); n != 1 {
				t.Errorf("%s/%s fetched %d times, want 1", m, f, n)
			}
		}
		cm, _ := e.cat.CachedModel(e.st, m)
		info, ok := cm.File(digits.InfoFile)
		if cm.Name != m || !ok || !slices.Equal(info.Data, files[m+"/info.json"]) {
			t.Errorf("%s: cached model %q has no byte-exact info.json", m, cm.Name)
		}
	}
	// Served from memory afterwards.
	total := srv.Total()
	for _, m := range storetest.SampleModels(t) {
		if _, err := e.cat.Model(testutil.Ctx(t), e.st, m); err != nil {
			t.Fatalf("Model(%s): %v", m, err)
		}
	}
	if n := srv.Total(); n != total {
		t.Errorf("Model after prefetch made %d requests", n-total)
	}
}

func TestPrefetchIsBounded(t *testing.T) {
	const models, limit = 10, 3
	files := map[string][]byte{}
	var gates []*remotetest.Gate
	for i := range models {
		files[fmt.Sprintf("m%02d/info.json", i)] = []byte(`{"name": "m"}`)
	}
	srv := storetest.NewServer(t, files, remotetest.Options{Master: true})
	for i := range models {
		gates = append(gates, srv.Hold(fmt.Sprintf("m%02d/info.json", i)))
	}
	e := newEnv(t, srv, Config{Prefetch: limit})
	l, err := e.cat.Listing(testutil.Ctx(t), e.st)
	if err != nil {
		t.Fatal(err)
	}
	waiting := func() int {
		n := 0
		for _, g := range gates {
			n += g.Waiting()
		}
		return n
	}
	testutil.WaitFor(t, "prefetch to start", func() bool { return waiting() == limit })
	time.Sleep(100 * time.Millisecond)
	if n := waiting(); n != limit {
		t.Errorf("%d info.json requests in flight, want at most %d", n, limit)
	}
	for _, g := range gates {
		g.Release()
	}
	e.waitPrefetched(t, l.Models...)
}

// TestPrefetchHonoursPushback: a 429 with Retry-After holds the store's
// next resolve until it has passed, and halves how many run at once.
func TestPrefetchHonoursPushback(t *testing.T) {
	files := map[string][]byte{}
	for i := range 4 {
		files[fmt.Sprintf("m%d/info.json", i)] = []byte(`{"name": "m"}`)
	}
	srv := storetest.NewServer(t, files, remotetest.Options{Master: true})
	var pushed time.Time
	srv.Intercept("m0/info.json", func(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
		if pushed.IsZero() {
			pushed = time.Now()
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		serve(w, r)
	})
	e := newEnv(t, srv, Config{Prefetch: 1})
	if _, err := e.cat.Listing(testutil.Ctx(t), e.st); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "m1 resolved", func() bool {
		_, ok := e.cat.CachedModel(e.st, "m1")
		return ok
	}, 5*time.Second)
	reqs := srv.Requests("m1/info.json")
	if len(reqs) == 0 {
		t.Fatal("m1/info.json never asked for")
	}
	if waited := reqs[0].Arrived.Sub(pushed); waited < 900*time.Millisecond {
		t.Errorf("m1 asked for %s after a 429 with Retry-After: 1", waited)
	}
	if n, until := e.st.Remote.Pushback(); n != 1 || until.Sub(pushed) < 900*time.Millisecond {
		t.Errorf("pushback %d, until %s after the 429", n, until.Sub(pushed))
	}
}

func TestModelsSorted(t *testing.T) {
	files := storetest.SampleFiles(t, storetest.WithoutMaster())
	files["zfail/info.json"] = []byte(`{}`)
	files["0fail/info.json"] = []byte(`{}`)
	srv := storetest.NewServer(t, files, remotetest.Options{Master: true})
	srv.SetStatus("zfail/info.json", http.StatusInternalServerError)
	srv.SetStatus("0fail/info.json", http.StatusForbidden)
	e := newEnv(t, srv, Config{})
	ms, err := e.cat.Models(testutil.Ctx(t), e.st)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		if m == nil {
			t.Fatal("nil model in Models")
		}
		got = append(got, m.Name)
	}
	// The models whose metadata cannot be fetched are left out.
	if !slices.Equal(got, storetest.SampleModels(t)) {
		t.Errorf("Models = %q, want %q", got, storetest.SampleModels(t))
	}

	// A failing store fails Models.
	down := remotetest.New(files, remotetest.Options{Master: true})
	down.Close()
	e2 := newEnv(t, down, Config{})
	if ms, err := e2.cat.Models(testutil.Ctx(t), e2.st); err == nil {
		t.Errorf("Models of a closed store: %d models, no error", len(ms))
	}
}

// TestCloseDuringPrefetch closes catalogs while their prefetch is running.
// Close must stop the prefetch and wait for every fetch goroutine.
func TestCloseDuringPrefetch(t *testing.T) {
	files := map[string][]byte{}
	for i := range 40 {
		files[fmt.Sprintf("m%02d/info.json", i)] = []byte(`{}`)
	}
	srv := storetest.NewServer(t, files, remotetest.Options{Master: true})
	for round := range 60 {
		st := newTestStore(t, srv.URL)
		cat := NewCatalog([]*Store{st}, nil, Config{Prefetch: 40})
		if _, err := cat.Listing(testutil.Ctx(t), st); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(round%4) * time.Millisecond)
		done := make(chan any)
		go func() {
			defer func() { done <- recover() }()
			cat.Close()
		}()
		select {
		case p := <-done:
			if p != nil {
				t.Fatalf("round %d: Close panicked: %v", round, p)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("Close did not stop the prefetch")
		}
	}
}

func TestCloseStopsStuckPrefetch(t *testing.T) {
	srv := storetest.NewServer(t, storetest.SampleFiles(t), remotetest.Options{})
	gate := srv.Hold("lenet/info.json")
	st := newTestStore(t, srv.URL)
	cat := NewCatalog([]*Store{st}, nil, Config{})
	if _, err := cat.Listing(testutil.Ctx(t), st); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gate.Arrived(): // the prefetch is now stuck on lenet/info.json
	case <-time.After(3 * time.Second):
		t.Fatal("prefetch did not start")
	}
	// Let the other models resolve, so that only the stuck fetch runs.
	testutil.WaitFor(t, "other models", func() bool {
		_, a := cat.CachedModel(st, "alexnet-torch")
		_, b := cat.CachedModel(st, "broken")
		return a && b
	})
	done := make(chan struct{})
	go func() {
		cat.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not stop a prefetch stuck on a silent server")
	}
}
