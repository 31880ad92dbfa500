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

	// wmu is held by the one writer of a batch, which encodes and writes
	// it without mu: a batch of 65,536 models takes a second, and every
	// resolve saves its model.
	wmu sync.Mutex

	mu      sync.Mutex // protects the fields below
	f       *os.File   // read and appended to; nil until opened
	index   map[string]logPos
	size    int64 // bytes in the file
	live    int64 // bytes of the lines that win
	pending []logLine
	// pendingAt is where each name's last pending line is: a batch holds
	// up to logBatch lines, and every save and load asks for one.
	pendingAt map[string]int
	// writing is the batch being written, found by load until indexed.
	writing   []logLine
	writingAt map[string]int
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
	if i, ok := l.writingAt[name]; ok {
		data, err := l.writing[i].encode()
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
	if l.queue(name, encode) && l.wmu.TryLock() {
		// A writer busy with the batch before writes this one next time.
		defer l.wmu.Unlock()
		l.writeBatch()
	}
}

// queue adds a line to the pending batch, and reports whether the batch
// is due.
func (l *modelLog) queue(name string, encode func() ([]byte, error)) (due bool) {
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
		return false
	}
	if len(l.pending) == 0 {
		l.oldest = time.Now()
		l.pendingAt = map[string]int{}
	}
	l.pendingAt[name] = len(l.pending)
	l.pending = append(l.pending, logLine{name: name, encode: encode})
	l.queued += estimatedLine
	return len(l.pending) >= logBatch || time.Since(l.oldest) >= logDelay
}

// estimatedLine is the bytes a queued model is counted for, until encoded.
const estimatedLine = 1 << 10

// keptLocked reports whether name is kept or queued.
func (l *modelLog) keptLocked(name string) bool {
	if _, ok := l.index[name]; ok {
		return true
	}
	_, pending := l.pendingAt[name]
	_, writing := l.writingAt[name]
	return pending || writing
}

// flush writes the pending lines.
func (l *modelLog) flush() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.writeBatch()
}

// close writes the pending lines and closes the file.
func (l *modelLog) close() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.writeBatch()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// writeBatch encodes the pending lines and appends them, then compacts
// the file when most of it is superseded. The caller holds wmu; mu is
// held only to take the batch and to index it.
func (l *modelLog) writeBatch() {
	l.mu.Lock()
	batch, at := l.pending, l.pendingAt
	l.pending, l.pendingAt, l.queued = nil, nil, 0
	l.writing, l.writingAt = batch, at
	f, off := l.f, l.size
	l.mu.Unlock()
	if len(batch) == 0 || f == nil {
		l.doneWriting(nil, nil)
		return
	}
	lines := make([]indexedLine, 0, len(batch))
	// Through a buffer, not one append of the batch: a batch is tens of
	// megabytes. A torn last line is cut off when read.
	w := bufio.NewWriterSize(f, 1<<20)
	var (
		err   error
		added int64 // bytes of names not kept before
	)
	for i, p := range batch {
		if at[p.name] != i {
			continue // a later line of the batch wins
		}
		line, encErr := encodeLine(p.name, p.encode)
		if encErr != nil {
			continue
		}
		kept, fits := l.fits(p.name, added+int64(len(line)))
		if !fits {
			continue
		}
		if !kept {
			added += int64(len(line))
		}
		if _, err = w.Write(line); err != nil {
			break
		}
		lines = append(lines, indexedLine{p.name, logPos{off, int64(len(line))}})
		off += int64(len(line))
	}
	if err == nil {
		err = w.Flush()
	}
	l.doneWriting(lines, err)
}

// indexedLine is where a written line of a name is.
type indexedLine struct {
	name string
	pos  logPos
}

// fits says whether n more bytes for name stay within the bound: a name
// kept already may always be replaced.
func (l *modelLog) fits(name string, n int64) (kept, fits bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, kept = l.index[name]
	return kept, kept || l.live+n <= l.maxBytes
}

// doneWriting indexes the lines written, or gives the file up after err.
func (l *modelLog) doneWriting(lines []indexedLine, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writing, l.writingAt = nil, nil
	if l.f == nil {
		return
	}
	if err != nil {
		l.f.Close()
		l.f = nil
		l.fail(err)
		return
	}
	for _, x := range lines {
		l.indexLocked(x.name, x.pos)
		l.size = x.pos.off + x.pos.n
	}
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
