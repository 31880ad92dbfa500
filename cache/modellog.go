package cache

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
)

// modelLog is one store's kept models: a file of lines `"name"\tJSON\n`,
// appended to in batches, the last line of a name winning. It is read
// once into an index of where each name's line is, and written again
// with only the lines that win when most of it is superseded. Its live
// bytes are bounded: past maxBytes, new models are not kept (those kept
// may still be replaced); they are fetched again after a restart.
type modelLog struct {
	path     string
	maxBytes int64
	log      *zap.Logger

	mu      sync.Mutex // protects the fields below
	f       *os.File   // read and appended to; nil until opened
	index   map[string]logPos
	size    int64 // bytes in the file
	live    int64 // bytes of the lines that win
	pending []logLine
	// pendingAt is where each name's last pending line is: a batch holds
	// up to logBatch lines, and every save and load asks for one.
	pendingAt map[string]int
	queued    int64     // bytes of the pending lines
	oldest    time.Time // of the pending lines
	failed    bool      // the file cannot be used: nothing more is kept
	warned    bool
}

type logPos struct{ off, n int64 }

type logLine struct {
	name   string
	encode func() ([]byte, error) // the JSON, made when written
}

// Batching: pending lines are encoded and written when this many wait, or
// when the oldest has waited this long (checked as lines come), or on
// flush: a listing's models are resolved first, kept after.
const (
	logBatch = 1 << 16
	logDelay = 5 * time.Second
)

// openLocked opens the file and indexes it, once.
func (l *modelLog) openLocked() bool {
	if l.f != nil || l.failed {
		return l.f != nil
	}
	if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
		l.fail(err)
		return false
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		l.fail(err)
		return false
	}
	l.f, l.index = f, map[string]logPos{}
	l.size, l.live = 0, 0
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			// A torn last line (a crash while appending) is cut off.
			if err == io.EOF && len(line) > 0 {
				_ = f.Truncate(l.size)
			}
			break
		}
		if name, ok := lineName(line); ok {
			l.indexLocked(name, logPos{l.size, int64(len(line))})
		}
		l.size += int64(len(line))
	}
	return true
}

func (l *modelLog) indexLocked(name string, pos logPos) {
	if old, ok := l.index[name]; ok {
		l.live -= old.n
	}
	l.index[name] = pos
	l.live += pos.n
}

func (l *modelLog) fail(err error) {
	l.failed = true
	l.log.Debug("could not keep model metadata on disk", zap.String("path", l.path), zap.Error(err))
}

// lineName reads the name a line starts with.
func lineName(line []byte) (string, bool) {
	i := bytes.IndexByte(line, '\t')
	var name string
	if i < 0 || json.Unmarshal(line[:i], &name) != nil {
		return "", false
	}
	return name, true
}

// load returns the JSON of a name's winning line (pending ones included).
func (l *modelLog) load(name string) ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i, ok := l.pendingAt[name]; ok {
		data, err := l.pending[i].encode()
		return data, err == nil
	}
	if !l.openLocked() {
		return nil, false
	}
	pos, ok := l.index[name]
	if !ok {
		return nil, false
	}
	buf := make([]byte, pos.n)
	if _, err := l.f.ReadAt(buf, pos.off); err != nil {
		return nil, false
	}
	return lineJSON(buf), true
}

func lineJSON(line []byte) []byte {
	i := bytes.IndexByte(line, '\t')
	return bytes.TrimSuffix(line[i+1:], []byte("\n"))
}

// save queues a model for the next batch: encode makes its JSON then.
// Past the bound, a name not kept yet is refused (queued lines count an
// estimate of their size until they are written).
func (l *modelLog) save(name string, encode func() ([]byte, error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.openLocked() {
		return
	}
	if !l.keptLocked(name) && l.live+l.queued > l.maxBytes {
		if !l.warned {
			l.warned = true
			l.log.Warn("kept metadata reached its bound: more models are not kept on disk", zap.String("path", l.path), zap.Int64("bytes", l.maxBytes))
		}
		return
	}
	if len(l.pending) == 0 {
		l.oldest = time.Now()
		l.pendingAt = map[string]int{}
	}
	l.pendingAt[name] = len(l.pending)
	l.pending = append(l.pending, logLine{name: name, encode: encode})
	l.queued += estimatedLine
	if len(l.pending) >= logBatch || time.Since(l.oldest) >= logDelay {
		l.writeLocked()
	}
}

// estimatedLine is the bytes a queued model is counted for, until encoded.
const estimatedLine = 1 << 10

// keptLocked reports whether name is kept or queued.
func (l *modelLog) keptLocked(name string) bool {
	if _, ok := l.index[name]; ok {
		return true
	}
	_, ok := l.pendingAt[name]
	return ok
}

// flush writes the pending lines.
func (l *modelLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeLocked()
}

// close writes the pending lines and closes the file.
func (l *modelLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeLocked()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// writeLocked encodes the pending lines and appends them in one write,
// then compacts the file when most of it is superseded.
func (l *modelLog) writeLocked() {
	pending := l.pending
	l.pending, l.pendingAt, l.queued = nil, nil, 0
	if len(pending) == 0 || l.f == nil {
		return
	}
	// Through a buffer, not one append of the batch: a batch of 65536
	// models is tens of megabytes, and growing it was a tenth of the CPU
	// of a 50,000-model mount. A torn last line is cut off when read.
	w := bufio.NewWriterSize(l.f, 1<<20)
	off := l.size
	var err error
	for _, p := range pending {
		line, encErr := encodeLine(p.name, p.encode)
		if encErr != nil {
			continue
		}
		if _, kept := l.index[p.name]; !kept && l.live+int64(len(line)) > l.maxBytes {
			continue
		}
		if _, err = w.Write(line); err != nil {
			break
		}
		l.indexLocked(p.name, logPos{off, int64(len(line))})
		off += int64(len(line))
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		l.f.Close()
		l.f = nil
		l.fail(err)
		return
	}
	l.size = off
	if l.size > 2*l.live && l.size > 1<<20 {
		l.compactLocked()
	}
}

// encodeLine is a log line: the name, a tab, the JSON, a newline.
func encodeLine(name string, encode func() ([]byte, error)) ([]byte, error) {
	data, err := encode()
	if err != nil {
		return nil, err
	}
	q, err := json.Marshal(name)
	if err != nil {
		return nil, err
	}
	line := make([]byte, 0, len(q)+len(data)+2)
	return append(append(append(append(line, q...), '\t'), data...), '\n'), nil
}

// compactLocked writes the winning lines to a new file that replaces the
// log.
func (l *modelLog) compactLocked() {
	names := make([]string, 0, len(l.index))
	for n := range l.index {
		names = append(names, n)
	}
	sort.Strings(names)
	tmp, err := os.CreateTemp(filepath.Dir(l.path), ".tmp-*")
	if err != nil {
		l.fail(err)
		return
	}
	w := bufio.NewWriterSize(tmp, 1<<20)
	index := make(map[string]logPos, len(names))
	var off int64
	for _, n := range names {
		pos := l.index[n]
		buf := make([]byte, pos.n)
		if _, err = l.f.ReadAt(buf, pos.off); err != nil {
			break
		}
		if _, err = w.Write(buf); err != nil {
			break
		}
		index[n] = logPos{off, pos.n}
		off += pos.n
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), l.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		l.log.Debug("could not compact kept model metadata", zap.String("path", l.path), zap.Error(err))
		return
	}
	l.f.Close()
	l.f, err = os.OpenFile(l.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		l.f = nil
		l.fail(err)
		return
	}
	l.index, l.size, l.live = index, off, off
}
