package remote

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// TestRequestCounts: each attempt is counted by method and status class,
// and the last one decides the store's health.
func TestRequestCounts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/s/ok":
			w.Write([]byte("ok"))
		case "/s/fail":
			http.Error(w, "down", http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	s, err := NewStore(srv.URL+"/s", Options{Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if h := s.Health(); h.Known {
		t.Errorf("Health before any request = %+v, want unknown", h)
	}
	steps := []struct {
		file   string
		wantUp bool
	}{{"ok", true}, {"missing", true}, {"fail", false}, {"ok", true}}
	for _, st := range steps {
		_, _, _ = s.Fetch(ctx, nil, 1<<20, st.file)
		if h := s.Health(); !h.Known || h.Up != st.wantUp {
			t.Errorf("after GET %s: Health = %+v, want up=%v", st.file, h, st.wantUp)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, _, _ = s.Fetch(canceled, nil, 1<<20, "ok")
	if h := s.Health(); !h.Up {
		t.Errorf("a request the caller gave up changed health: %+v", h)
	}
	want := []RequestCount{{"GET", "2xx", 2}, {"GET", "4xx", 1}, {"GET", "5xx", 1}, {"GET", "canceled", 1}}
	if got := s.RequestCounts(); !slices.Equal(got, want) {
		t.Errorf("RequestCounts = %+v, want %+v", got, want)
	}

	srv.Close()
	_, _, _ = s.Fetch(ctx, nil, 1<<20, "ok")
	if h := s.Health(); !h.Known || h.Up || h.LastSuccess.IsZero() {
		t.Errorf("after connection refused: Health = %+v, want down with a last success", h)
	}
	if got := s.RequestCounts(); !slices.Contains(got, RequestCount{"GET", "error", 1}) {
		t.Errorf("RequestCounts = %+v, want one GET error", got)
	}
}
