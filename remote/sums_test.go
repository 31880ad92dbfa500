package remote

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
)

func TestParseSums(t *testing.T) {
	a, b := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	lines := []string{
		fmt.Sprintf("%x  lenet/model.caffemodel", a),
		fmt.Sprintf("%x *lenet/labels.txt", b),
		fmt.Sprintf("%x  ./alexnet/info.json", a),
		"# a comment",
		"",
		fmt.Sprintf("%x  ../etc/passwd", a),
		fmt.Sprintf("%x  /etc/passwd", a),
		fmt.Sprintf("%x  a/../b", a),
		"xyz  lenet/bad",
		fmt.Sprintf("%x", a),
		fmt.Sprintf("%x  lenet/model.caffemodel", a), // the same again: fine
	}
	sums, bad, err := ParseSums([]byte(strings.Join(lines, "\n") + "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][32]byte{"lenet/model.caffemodel": a, "lenet/labels.txt": b, "alexnet/info.json": a}
	if len(sums) != len(want) {
		t.Errorf("%d sums, want %d: %v", len(sums), len(want), sums)
	}
	for p, s := range want {
		if d := sums[p]; d.Alg != AlgSHA256 || d.Sum != string(s[:]) {
			t.Errorf("%s: %v", p, d)
		}
	}
	if bad != 5 {
		t.Errorf("bad lines %d, want 5", bad)
	}
	if _, _, err := ParseSums([]byte(fmt.Sprintf("%x  x\n%x  x\n", a, b))); err == nil {
		t.Error("a path with two digests was accepted")
	}
	out := FormatSums(sums, []string{"alexnet/info.json", "lenet/labels.txt"})
	if again, _, err := ParseSums(out); err != nil || len(again) != 2 || again["lenet/labels.txt"] != sums["lenet/labels.txt"] {
		t.Errorf("round trip: %v %v", again, err)
	}
}
