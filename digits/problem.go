package digits

import (
	"errors"
	"strings"
)

// Severity says what a Problem means for the import.
type Severity int

const (
	// Blocker: DIGITS could not import the model.
	Blocker Severity = iota + 1
	// Warning: the model imports, but something is missing, ignored or odd.
	Warning
)

func (s Severity) String() string {
	switch s {
	case Blocker:
		return "error"
	case Warning:
		return "warning"
	}
	return "unknown"
}

// Code classifies the problems callers act on beyond their severity.
type Code int

const (
	// CodeOther is every problem without a more specific code.
	CodeOther Code = iota
	// CodeInfoNotJSON: info.json is not a JSON object. DIGITS' own store
	// page fails on the whole store (HTTP 500).
	CodeInfoNotJSON
	// CodeAuxNotJSON: aux.json is not valid JSON. DIGITS' own store page
	// fails on the whole store; the model itself imports (aux.json only
	// feeds the license, logo and dataset columns).
	CodeAuxNotJSON
	// CodeAuxUnknown: aux.json could not be read for now (a transient
	// failure); its fields are unknown and it is asked for again later.
	CodeAuxUnknown
	// CodeEmpty: a file the store has is empty.
	CodeEmpty
	// CodeMissing: a file info.json or aux.json names is not on the store.
	CodeMissing
	// CodeUnsafeName: a file name refused by SafeRelName.
	CodeUnsafeName
	// CodeNameTaken: a file not shown under its name because the folder
	// already uses that name for another file.
	CodeNameTaken
	// CodeFramework: "framework" is a known framework in the wrong case.
	CodeFramework
)

// Problem is one finding about a store model. It is an error: callers find
// them with errors.As (or ProblemsOf), never by parsing messages.
type Problem struct {
	Severity Severity
	Code     Code
	// File is the store file concerned ("info.json", "aux.json", or a
	// remote name); Key the info.json or aux.json key, when one is.
	File, Key string
	// LeftOut is set when the store file File is not shown in the model
	// folder because of this problem (no file of that name is shown).
	LeftOut bool
	// Msg is the whole sentence, naming the file and key.
	Msg string
}

func (p *Problem) Error() string { return p.Msg }

// Unwrap makes a Blocker match ErrNotImportable with errors.Is.
func (p *Problem) Unwrap() error {
	if p.Severity == Blocker {
		return ErrNotImportable
	}
	return nil
}

// Problems is several problems as one error ("not importable: A; B" when
// any is a Blocker). errors.Is and errors.As see every element.
type Problems []*Problem

func (ps Problems) Error() string {
	msgs := make([]string, len(ps))
	blocked := false
	for i, p := range ps {
		msgs[i] = p.Msg
		blocked = blocked || p.Severity == Blocker
	}
	s := strings.Join(msgs, "; ")
	if blocked {
		return ErrNotImportable.Error() + ": " + s
	}
	return s
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (ps Problems) Unwrap() []error {
	out := make([]error, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// err returns ps as an error, nil when empty.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// ProblemsOf returns every *Problem in err's tree, in order.
func ProblemsOf(err error) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if p, ok := e.(*Problem); ok {
			out = append(out, p)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	if len(out) == 0 && err != nil {
		// An error from outside this package: one problem of its own.
		sev := Warning
		if errors.Is(err, ErrNotImportable) {
			sev = Blocker
		}
		out = append(out, &Problem{Severity: sev, Msg: err.Error()})
	}
	return out
}
