package userspace_test

import (
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace"
)

// scrapeWhile scrapes the metrics in a loop while f runs, and fails on a
// scrape that did not answer 200. Run under -race, it shows the scrape and
// Stop share nothing unguarded.
func scrapeWhile(t *testing.T, srv *userspace.Server, f func()) {
	t.Helper()
	h := userspace.MetricsHandler(srv, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var scrapes int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			if rec.Code != 200 {
				t.Errorf("scrape: %d", rec.Code)
			}
			scrapes++
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	f()
	close(stop)
	wg.Wait()
	if scrapes == 0 {
		t.Fatal("no scrape ran")
	}
}

func TestScrapeDuringStop(t *testing.T) {
	t.Run("udp", func(t *testing.T) {
		ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 2})
		scrapeWhile(t, ts.srv, ts.srv.Stop)
	})
	t.Run("xdp", func(t *testing.T) {
		l := testutil.NewLab(t, 1)
		ts := startInLab(t, l, userspace.Config{})
		scrapeWhile(t, ts.srv, ts.srv.Stop)
	})
}
