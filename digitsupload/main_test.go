package digitsupload

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every
// goroutine has an owner that stops and waits for it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The expirable LRU's janitor (golang-lru v2.0.7) cannot be
		// stopped: its Close is commented out upstream.
		goleak.IgnoreAnyFunction("github.com/hashicorp/golang-lru/v2/expirable.NewLRU[...].func1"),
	)
}
