// Package faults is the fault matrix (make faults): every row a real mount
// of the built binary against the fault-injecting store of
// faultserver_test.go.
package faults

import (
	"os"
	"testing"

	"github.com/modelstorefs/modelstorefs/integration/itest"
)

func TestMain(m *testing.M) { os.Exit(itest.Main(m)) }
