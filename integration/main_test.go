// Package integration mounts the built modelstorefs binary for real (FUSE,
// as a subprocess) against model stores served on 127.0.0.1: a Go
// httptest server and python3's http.server, whose listing nobody here
// wrote. The fault matrix is in integration/faults, the measurements in
// integration/bench; what they share is integration/itest.
package integration

import (
	"os"
	"testing"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

func TestMain(m *testing.M) { os.Exit(itest.Main(m)) }
