package fs

import "time"

// observeRead reports a finished read of a store file to Options.OnRead.
func (f *FS) observeRead(start time.Time) {
	if f.onRead != nil {
		f.onRead(time.Since(start))
	}
}
