// Package faults is the fault matrix (make faults): every row a real mount
// of the built binary against remotetest's fault-injecting store (the one
// the unit tests use), adapted in faultserver_test.go.
package faults

import (
	"os"
	"testing"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

func TestMain(m *testing.M) { os.Exit(itest.Main(m)) }
