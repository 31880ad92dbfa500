// Package bench holds make bench's measurements (run only with
// MODELSTOREFS_BENCH=1): modelstorefs against curl, cat, rclone mount and
// httpdirfs on 127.0.0.1.
package bench

import (
	"os"
	"testing"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

func TestMain(m *testing.M) { os.Exit(itest.Main(m)) }
