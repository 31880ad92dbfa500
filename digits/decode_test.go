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
	var ops []pop
	i := 0
	need := func(n int) error {
		if i+n > len(b) {
			return fmt.Errorf("truncated at %d", i)
		}
		return nil
	}
	readLine := func() (string, error) {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return "", fmt.Errorf("unterminated line at %d", i)
		}
		s := string(b[i : i+j])
		i += j + 1
		return s, nil
	}
	for i < len(b) {
		pos, c := i, b[i]
		d, ok := proto2Ops[c]
		if !ok {
			return ops, fmt.Errorf("opcode %#x at %d is not a protocol 0-2 opcode", c, pos)
		}
		i++
		op := pop{Pos: pos, Code: c, Name: d.name}
		switch d.arg {
		case "u8":
			if err := need(1); err != nil {
				return ops, err
			}
			op.Arg = int64(b[i])
			i++
		case "u16":
			if err := need(2); err != nil {
				return ops, err
			}
			op.Arg = int64(binary.LittleEndian.Uint16(b[i:]))
			i += 2
		case "i32":
			if err := need(4); err != nil {
				return ops, err
			}
			op.Arg = int64(int32(binary.LittleEndian.Uint32(b[i:])))
			i += 4
		case "f64be":
			if err := need(8); err != nil {
				return ops, err
			}
			op.Arg = math.Float64frombits(binary.BigEndian.Uint64(b[i:]))
			i += 8
		case "str1", "str4", "uni4", "long1", "long4":
			var n int
			if d.arg == "str1" || d.arg == "long1" {
				if err := need(1); err != nil {
					return ops, err
				}
				n = int(b[i])
				i++
			} else {
				if err := need(4); err != nil {
					return ops, err
				}
				n = int(binary.LittleEndian.Uint32(b[i:]))
				i += 4
			}
			if n < 0 {
				return ops, fmt.Errorf("negative length at %d", pos)
			}
			if err := need(n); err != nil {
				return ops, err
			}
			raw := b[i : i+n]
			i += n
			if d.arg == "long1" || d.arg == "long4" {
				op.Arg = decodeLong(raw)
			} else {
				op.Arg = string(raw)
			}
		case "line2":
			m, err := readLine()
			if err != nil {
				return ops, err
			}
			n, err := readLine()
			if err != nil {
				return ops, err
			}
			op.Arg = m + "\n" + n
		case "line":
			s, err := readLine()
			if err != nil {
				return ops, err
			}
			op.Arg = s
		}
		ops = append(ops, op)
		if c == '.' {
			if i != len(b) {
				return ops, fmt.Errorf("%d bytes after STOP", len(b)-i)
			}
			return ops, nil
		}
	}
	return ops, fmt.Errorf("no STOP")
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
	var stack []any
	memo := map[int64]any{}
	pop1 := func() (any, error) {
		if len(stack) == 0 {
			return nil, fmt.Errorf("stack underflow")
		}
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, isMark := v.(pyMark); isMark {
			return nil, fmt.Errorf("unexpected MARK on stack")
		}
		return v, nil
	}
	popMark := func() ([]any, error) {
		for k := len(stack) - 1; k >= 0; k-- {
			if _, ok := stack[k].(pyMark); ok {
				items := append([]any(nil), stack[k+1:]...)
				stack = stack[:k]
				return items, nil
			}
		}
		return nil, fmt.Errorf("no MARK")
	}
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
			if len(stack) != 1 {
				return nil, fmt.Errorf("STOP with %d items on stack", len(stack))
			}
			return pop1()
		case "MARK":
			stack = append(stack, pyMark{})
		case "GLOBAL":
			s := op.Arg.(string)
			i := bytes.IndexByte([]byte(s), '\n')
			stack = append(stack, pyGlobal{s[:i], s[i+1:]})
		case "EMPTY_TUPLE":
			stack = append(stack, pyTuple{})
		case "EMPTY_DICT":
			stack = append(stack, &pyDict{M: map[string]any{}})
		case "EMPTY_LIST":
			stack = append(stack, &pyList{})
		case "NONE":
			stack = append(stack, nil)
		case "SHORT_BINSTRING", "BINSTRING":
			stack = append(stack, pyStr{S: op.Arg.(string)})
		case "BINUNICODE":
			stack = append(stack, pyStr{S: op.Arg.(string), Unicode: true})
		case "BININT1", "BININT2", "BININT", "LONG1", "LONG4", "BINFLOAT":
			stack = append(stack, op.Arg)
		case "NEWTRUE":
			stack = append(stack, true)
		case "NEWFALSE":
			stack = append(stack, false)
		case "BINPUT", "LONG_BINPUT":
			if len(stack) == 0 {
				return nil, fmt.Errorf("BINPUT on empty stack")
			}
			memo[op.Arg.(int64)] = stack[len(stack)-1]
		case "BINGET", "LONG_BINGET":
			v, ok := memo[op.Arg.(int64)]
			if !ok {
				return nil, fmt.Errorf("BINGET %v: not in memo", op.Arg)
			}
			stack = append(stack, v)
		case "TUPLE1", "TUPLE2", "TUPLE3":
			k := int(op.Code - 0x84)
			t := make(pyTuple, k)
			for x := k - 1; x >= 0; x-- {
				v, err := pop1()
				if err != nil {
					return nil, err
				}
				t[x] = v
			}
			stack = append(stack, t)
		case "TUPLE":
			items, err := popMark()
			if err != nil {
				return nil, err
			}
			stack = append(stack, pyTuple(items))
		case "SETITEMS", "SETITEM":
			var items []any
			if op.Name == "SETITEMS" {
				if items, err = popMark(); err != nil {
					return nil, err
				}
			} else {
				v, err1 := pop1()
				k, err2 := pop1()
				if err1 != nil || err2 != nil {
					return nil, fmt.Errorf("SETITEM underflow")
				}
				items = []any{k, v}
			}
			if len(items)%2 != 0 {
				return nil, fmt.Errorf("odd SETITEMS")
			}
			top, err := pop1()
			if err != nil {
				return nil, err
			}
			d, ok := top.(*pyDict)
			if !ok {
				return nil, fmt.Errorf("SETITEMS on %T", top)
			}
			for x := 0; x < len(items); x += 2 {
				k, ok := items[x].(pyStr)
				if !ok {
					return nil, fmt.Errorf("dict key %T", items[x])
				}
				if _, dup := d.M[k.S]; dup {
					return nil, fmt.Errorf("duplicate key %q", k.S)
				}
				d.M[k.S] = items[x+1]
			}
			stack = append(stack, d)
		case "APPENDS", "APPEND":
			var items []any
			if op.Name == "APPENDS" {
				if items, err = popMark(); err != nil {
					return nil, err
				}
			} else {
				v, err := pop1()
				if err != nil {
					return nil, err
				}
				items = []any{v}
			}
			top, err := pop1()
			if err != nil {
				return nil, err
			}
			l, ok := top.(*pyList)
			if !ok {
				return nil, fmt.Errorf("APPENDS on %T", top)
			}
			l.Items = append(l.Items, items...)
			stack = append(stack, l)
		case "NEWOBJ":
			args, err := pop1()
			if err != nil {
				return nil, err
			}
			cls, err := pop1()
			if err != nil {
				return nil, err
			}
			g, ok1 := cls.(pyGlobal)
			t, ok2 := args.(pyTuple)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("NEWOBJ on %T %T", cls, args)
			}
			if g == (pyGlobal{"digits.status", "Status"}) {
				return nil, fmt.Errorf("NEWOBJ at %d builds an old-style digits.status.Status", op.Pos)
			}
			stack = append(stack, &pyObj{Class: g, How: "NEWOBJ", NewArgs: t})
		case "OBJ":
			items, err := popMark()
			if err != nil {
				return nil, err
			}
			if len(items) == 0 {
				return nil, fmt.Errorf("OBJ without class")
			}
			g, ok := items[0].(pyGlobal)
			if !ok {
				return nil, fmt.Errorf("OBJ on %T", items[0])
			}
			stack = append(stack, &pyObj{Class: g, How: "OBJ", NewArgs: pyTuple(items[1:])})
		case "BUILD":
			state, err := pop1()
			if err != nil {
				return nil, err
			}
			top, err := pop1()
			if err != nil {
				return nil, err
			}
			o, ok := top.(*pyObj)
			if !ok || o.Built {
				return nil, fmt.Errorf("BUILD on %T", top)
			}
			o.State, o.Built = state, true
			stack = append(stack, o)
		default:
			return nil, fmt.Errorf("opcode %s not expected in status.pickle", op.Name)
		}
	}
	return nil, fmt.Errorf("no STOP")
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
