package digits

// A test-only protocol-2 pickle disassembler and evaluator, independent of
// the writer in pickle.go, used to check the writer's output opcode by opcode
// and to decode it back (round trip).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"reflect"
)

// pop is one decoded opcode.
type pop struct {
	Pos  int
	Code byte
	Name string
	Arg  any // string (str/unicode/global "mod\nname"), int64, float64, byte(memo), nil
}

// proto2Ops lists every opcode of protocols 0-2 with its argument kind.
// Anything else (protocol 3+: B, C, 0x8c-0x98, or garbage) is an error.
var proto2Ops = map[byte]struct {
	name string
	arg  string // "", "u8", "u16", "i32", "f64be", "str1", "str4", "uni4", "line2", "long1", "long4", "line"
}{
	0x80: {"PROTO", "u8"}, '.': {"STOP", ""}, 'c': {"GLOBAL", "line2"}, ')': {"EMPTY_TUPLE", ""},
	0x81: {"NEWOBJ", ""}, 'o': {"OBJ", ""}, 'b': {"BUILD", ""}, '(': {"MARK", ""},
	'}': {"EMPTY_DICT", ""}, 'u': {"SETITEMS", ""}, 's': {"SETITEM", ""}, ']': {"EMPTY_LIST", ""},
	'e': {"APPENDS", ""}, 'a': {"APPEND", ""}, 0x85: {"TUPLE1", ""}, 0x86: {"TUPLE2", ""},
	0x87: {"TUPLE3", ""}, 't': {"TUPLE", ""}, 'U': {"SHORT_BINSTRING", "str1"},
	'T': {"BINSTRING", "str4"}, 'X': {"BINUNICODE", "uni4"}, 'K': {"BININT1", "u8"},
	'M': {"BININT2", "u16"}, 'J': {"BININT", "i32"}, 0x8a: {"LONG1", "long1"},
	0x8b: {"LONG4", "long4"}, 'G': {"BINFLOAT", "f64be"}, 'N': {"NONE", ""},
	0x88: {"NEWTRUE", ""}, 0x89: {"NEWFALSE", ""}, 'q': {"BINPUT", "u8"}, 'h': {"BINGET", "u8"},
	'r': {"LONG_BINPUT", "i32"}, 'j': {"LONG_BINGET", "i32"}, 'R': {"REDUCE", ""},
	'0': {"POP", ""}, '2': {"DUP", ""}, '1': {"POP_MARK", ""},
	'i': {"INST", "line2"}, 'l': {"LIST", ""}, 'd': {"DICT", ""},
	'S': {"STRING", "line"}, 'V': {"UNICODE", "line"}, 'I': {"INT", "line"}, 'L': {"LONG", "line"},
	'F': {"FLOAT", "line"}, 'p': {"PUT", "line"}, 'g': {"GET", "line"},
}

// disasm splits b into opcodes; it fails on anything that is not protocol
// 0-2, on truncation and on bytes after STOP.
func disasm(b []byte) ([]pop, error) {
	r := &opReader{b: b}
	var ops []pop
	for r.i < len(b) {
		pos, c := r.i, b[r.i]
		d, ok := proto2Ops[c]
		if !ok {
			return ops, fmt.Errorf("opcode %#x at %d is not a protocol 0-2 opcode", c, pos)
		}
		r.i++
		arg, err := r.arg(d.arg, pos)
		if err != nil {
			return ops, err
		}
		ops = append(ops, pop{Pos: pos, Code: c, Name: d.name, Arg: arg})
		if c == '.' {
			if r.i != len(b) {
				return ops, fmt.Errorf("%d bytes after STOP", len(b)-r.i)
			}
			return ops, nil
		}
	}
	return ops, fmt.Errorf("no STOP")
}

// opReader reads the arguments of disasm's opcodes from b at i.
type opReader struct {
	b []byte
	i int
}

// take returns the next n bytes, failing if b ends first.
func (r *opReader) take(n int) ([]byte, error) {
	if n < 0 || r.i+n > len(r.b) {
		return nil, fmt.Errorf("truncated at %d", r.i)
	}
	p := r.b[r.i : r.i+n]
	r.i += n
	return p, nil
}

// line returns the text up to the next newline, which it skips.
func (r *opReader) line() (string, error) {
	j := bytes.IndexByte(r.b[r.i:], '\n')
	if j < 0 {
		return "", fmt.Errorf("unterminated line at %d", r.i)
	}
	s := string(r.b[r.i : r.i+j])
	r.i += j + 1
	return s, nil
}

// arg reads an argument of kind (proto2Ops' arg) for the opcode at pos.
func (r *opReader) arg(kind string, pos int) (any, error) {
	switch kind {
	case "u8":
		p, err := r.take(1)
		if err != nil {
			return nil, err
		}
		return int64(p[0]), nil
	case "u16":
		p, err := r.take(2)
		if err != nil {
			return nil, err
		}
		return int64(binary.LittleEndian.Uint16(p)), nil
	case "i32":
		p, err := r.take(4)
		if err != nil {
			return nil, err
		}
		return int64(int32(binary.LittleEndian.Uint32(p))), nil
	case "f64be":
		p, err := r.take(8)
		if err != nil {
			return nil, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(p)), nil
	case "str1", "str4", "uni4", "long1", "long4":
		return r.counted(kind, pos)
	case "line2":
		m, err := r.line()
		if err != nil {
			return nil, err
		}
		n, err := r.line()
		if err != nil {
			return nil, err
		}
		return m + "\n" + n, nil
	case "line":
		return r.line()
	}
	return nil, nil
}

// counted reads a length-prefixed argument: a one-byte length for str1 and
// long1, else four bytes; longs are decoded, the others are strings.
func (r *opReader) counted(kind string, pos int) (any, error) {
	var n int
	if kind == "str1" || kind == "long1" {
		p, err := r.take(1)
		if err != nil {
			return nil, err
		}
		n = int(p[0])
	} else {
		p, err := r.take(4)
		if err != nil {
			return nil, err
		}
		n = int(binary.LittleEndian.Uint32(p))
	}
	if n < 0 {
		return nil, fmt.Errorf("negative length at %d", pos)
	}
	raw, err := r.take(n)
	if err != nil {
		return nil, err
	}
	if kind == "long1" || kind == "long4" {
		return decodeLong(raw), nil
	}
	return string(raw), nil
}

func decodeLong(raw []byte) any {
	if len(raw) == 0 {
		return int64(0)
	}
	be := make([]byte, len(raw))
	for k := range raw {
		be[len(raw)-1-k] = raw[k]
	}
	v := new(big.Int).SetBytes(be)
	if raw[len(raw)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(raw))))
	}
	if v.IsInt64() {
		return v.Int64()
	}
	return v
}

// Decoded Python values.
type (
	pyStr struct {
		S       string
		Unicode bool // BINUNICODE (py2 unicode) rather than SHORT_BINSTRING (py2 str)
	}
	pyTuple  []any
	pyList   struct{ Items []any }
	pyDict   struct{ M map[string]any }
	pyGlobal struct{ Module, Name string }
	pyObj    struct {
		Class   pyGlobal
		How     string // "NEWOBJ" or "OBJ"
		State   any
		Built   bool
		NewArgs pyTuple
	}
	pyMark struct{}
)

// unpickle evaluates the opcodes our writer uses (plus a few neighbours)
// and returns the root object. It enforces the stack/mark discipline.
func unpickle(b []byte) (any, error) {
	ops, err := disasm(b)
	if err != nil {
		return nil, err
	}
	m := &unpickler{memo: map[int64]any{}}
	for n, op := range ops {
		if n == 0 && (op.Code != 0x80 || op.Arg != int64(2)) {
			return nil, fmt.Errorf("first opcode %s %v, want PROTO 2", op.Name, op.Arg)
		}
		switch op.Name {
		case "PROTO":
			if n != 0 {
				return nil, fmt.Errorf("PROTO not first")
			}
		case "STOP":
			if len(m.stack) != 1 {
				return nil, fmt.Errorf("STOP with %d items on stack", len(m.stack))
			}
			return m.pop1()
		default:
			if err := m.step(op); err != nil {
				return nil, err
			}
		}
	}
	return nil, fmt.Errorf("no STOP")
}

// unpickler is unpickle's machine: its stack (MARKs included) and memo.
type unpickler struct {
	stack []any
	memo  map[int64]any
}

func (m *unpickler) push(v any) { m.stack = append(m.stack, v) }

// pop1 pops one value, which must not be a MARK.
func (m *unpickler) pop1() (any, error) {
	if len(m.stack) == 0 {
		return nil, fmt.Errorf("stack underflow")
	}
	v := m.stack[len(m.stack)-1]
	m.stack = m.stack[:len(m.stack)-1]
	if _, isMark := v.(pyMark); isMark {
		return nil, fmt.Errorf("unexpected MARK on stack")
	}
	return v, nil
}

// popMark pops the values above the topmost MARK, and the MARK.
func (m *unpickler) popMark() ([]any, error) {
	for k := len(m.stack) - 1; k >= 0; k-- {
		if _, ok := m.stack[k].(pyMark); ok {
			items := append([]any(nil), m.stack[k+1:]...)
			m.stack = m.stack[:k]
			return items, nil
		}
	}
	return nil, fmt.Errorf("no MARK")
}

// popItems pops the operands of a marked opcode (the values above the
// MARK) or of its one-item form (n values), in stack order.
func (m *unpickler) popItems(marked bool, n int) ([]any, error) {
	if marked {
		return m.popMark()
	}
	items := make([]any, n)
	for x := n - 1; x >= 0; x-- {
		v, err := m.pop1()
		if err != nil {
			return nil, err
		}
		items[x] = v
	}
	return items, nil
}

// step evaluates one opcode other than PROTO and STOP.
func (m *unpickler) step(op pop) error {
	switch op.Name {
	case "MARK":
		m.push(pyMark{})
	case "GLOBAL":
		s := op.Arg.(string)
		i := bytes.IndexByte([]byte(s), '\n')
		m.push(pyGlobal{s[:i], s[i+1:]})
	case "EMPTY_TUPLE":
		m.push(pyTuple{})
	case "EMPTY_DICT":
		m.push(&pyDict{M: map[string]any{}})
	case "EMPTY_LIST":
		m.push(&pyList{})
	case "NONE":
		m.push(nil)
	case "SHORT_BINSTRING", "BINSTRING":
		m.push(pyStr{S: op.Arg.(string)})
	case "BINUNICODE":
		m.push(pyStr{S: op.Arg.(string), Unicode: true})
	case "BININT1", "BININT2", "BININT", "LONG1", "LONG4", "BINFLOAT":
		m.push(op.Arg)
	case "NEWTRUE":
		m.push(true)
	case "NEWFALSE":
		m.push(false)
	case "BINPUT", "LONG_BINPUT":
		if len(m.stack) == 0 {
			return fmt.Errorf("BINPUT on empty stack")
		}
		m.memo[op.Arg.(int64)] = m.stack[len(m.stack)-1]
	case "BINGET", "LONG_BINGET":
		v, ok := m.memo[op.Arg.(int64)]
		if !ok {
			return fmt.Errorf("BINGET %v: not in memo", op.Arg)
		}
		m.push(v)
	case "TUPLE1", "TUPLE2", "TUPLE3":
		return m.smallTuple(int(op.Code - 0x84))
	case "TUPLE":
		items, err := m.popMark()
		if err != nil {
			return err
		}
		m.push(pyTuple(items))
	case "SETITEMS", "SETITEM":
		return m.setItems(op.Name == "SETITEMS")
	case "APPENDS", "APPEND":
		return m.appends(op.Name == "APPENDS")
	case "NEWOBJ":
		return m.newObj(op.Pos)
	case "OBJ":
		return m.obj()
	case "BUILD":
		return m.build()
	default:
		return fmt.Errorf("opcode %s not expected in status.pickle", op.Name)
	}
	return nil
}

// smallTuple is TUPLE1-3: a tuple of the top k values.
func (m *unpickler) smallTuple(k int) error {
	t := make(pyTuple, k)
	for x := k - 1; x >= 0; x-- {
		v, err := m.pop1()
		if err != nil {
			return err
		}
		t[x] = v
	}
	m.push(t)
	return nil
}

// setItems is SETITEMS (marked, many) or SETITEM (one pair): the pairs go
// into the dict below them; keys must be strings, each once.
func (m *unpickler) setItems(marked bool) error {
	items, err := m.popItems(marked, 2)
	if err != nil {
		return err
	}
	if len(items)%2 != 0 {
		return fmt.Errorf("odd SETITEMS")
	}
	top, err := m.pop1()
	if err != nil {
		return err
	}
	d, ok := top.(*pyDict)
	if !ok {
		return fmt.Errorf("SETITEMS on %T", top)
	}
	for x := 0; x < len(items); x += 2 {
		k, ok := items[x].(pyStr)
		if !ok {
			return fmt.Errorf("dict key %T", items[x])
		}
		if _, dup := d.M[k.S]; dup {
			return fmt.Errorf("duplicate key %q", k.S)
		}
		d.M[k.S] = items[x+1]
	}
	m.push(d)
	return nil
}

// appends is APPENDS (marked, many) or APPEND (one): the values go onto
// the list below them.
func (m *unpickler) appends(marked bool) error {
	items, err := m.popItems(marked, 1)
	if err != nil {
		return err
	}
	top, err := m.pop1()
	if err != nil {
		return err
	}
	l, ok := top.(*pyList)
	if !ok {
		return fmt.Errorf("APPENDS on %T", top)
	}
	l.Items = append(l.Items, items...)
	m.push(l)
	return nil
}

// newObj is NEWOBJ (class, args), refused for digits.status.Status, which
// is an old-style class (reference section 6).
func (m *unpickler) newObj(pos int) error {
	args, err := m.pop1()
	if err != nil {
		return err
	}
	cls, err := m.pop1()
	if err != nil {
		return err
	}
	g, ok1 := cls.(pyGlobal)
	t, ok2 := args.(pyTuple)
	if !ok1 || !ok2 {
		return fmt.Errorf("NEWOBJ on %T %T", cls, args)
	}
	if g == (pyGlobal{"digits.status", "Status"}) {
		return fmt.Errorf("NEWOBJ at %d builds an old-style digits.status.Status", pos)
	}
	m.push(&pyObj{Class: g, How: "NEWOBJ", NewArgs: t})
	return nil
}

// obj is OBJ: MARK, class, args.
func (m *unpickler) obj() error {
	items, err := m.popMark()
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return fmt.Errorf("OBJ without class")
	}
	g, ok := items[0].(pyGlobal)
	if !ok {
		return fmt.Errorf("OBJ on %T", items[0])
	}
	m.push(&pyObj{Class: g, How: "OBJ", NewArgs: pyTuple(items[1:])})
	return nil
}

// build is BUILD: the state goes into the object below it, once.
func (m *unpickler) build() error {
	state, err := m.pop1()
	if err != nil {
		return err
	}
	top, err := m.pop1()
	if err != nil {
		return err
	}
	o, ok := top.(*pyObj)
	if !ok || o.Built {
		return fmt.Errorf("BUILD on %T", top)
	}
	o.State, o.Built = state, true
	m.push(o)
	return nil
}

// samePtr reports whether a and b are the same decoded object (memo identity).
func samePtr(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	return va.Kind() == reflect.Pointer && vb.Kind() == reflect.Pointer && va.Pointer() == vb.Pointer()
}

// checkOpcodes asserts the structural rules of reference section 6 on b:
// PROTO 2 first, STOP last, only protocol 0-2 opcodes, and no NEWOBJ
// building a digits.status.Status (every Status GLOBAL sits between a MARK
// and an OBJ).
func checkOpcodes(b []byte) error {
	if len(b) < 3 || b[0] != 0x80 || b[1] != 0x02 || b[len(b)-1] != '.' {
		return fmt.Errorf("does not start with 80 02 and end with '.'")
	}
	ops, err := disasm(b)
	if err != nil {
		return err
	}
	for k, op := range ops {
		if op.Code == 0x80 && k != 0 {
			return fmt.Errorf("PROTO at %d", op.Pos)
		}
		if op.Name != "GLOBAL" || op.Arg != "digits.status\nStatus" {
			continue
		}
		if k == 0 || ops[k-1].Name != "MARK" {
			return fmt.Errorf("Status GLOBAL at %d not preceded by MARK", op.Pos)
		}
		if k+1 >= len(ops) || ops[k+1].Name != "OBJ" {
			return fmt.Errorf("Status GLOBAL at %d followed by %s, want OBJ", op.Pos, ops[k+1].Name)
		}
		for _, next := range ops[k+1 : min(k+4, len(ops))] {
			if next.Name == "NEWOBJ" {
				return fmt.Errorf("NEWOBJ at %d follows a digits.status Status GLOBAL", next.Pos)
			}
		}
	}
	return nil
}
