package digits

import "testing"

func TestCleanText(t *testing.T) {
	tests := []struct{ in, line, text string }{
		{"plain ü 日本", "plain ü 日本", "plain ü 日本"},
		{"a\tb\nc", "a b c", "a\tb\nc"},
		{"a\r\nb", "a  b", "a\nb"},
		{"a\rb", "a b", "a\nb"},
		{"nul\x00esc\x1b[2J\x1b]0;title\x07", `nul\x00esc\x1b[2J\x1b]0;title\x07`, `nul\x00esc\x1b[2J\x1b]0;title\x07`},
		{"del\x7f c1\u009b31m", `del\x7f c1\u009b31m`, `del\x7f c1\u009b31m`},
		{"bad\xffutf8", `bad\xffutf8`, `bad\xffutf8`},
		{"ls\u2028ps\u2029", "ls ps ", "ls\nps\n"},
	}
	for _, tt := range tests {
		if got := CleanLine(tt.in); got != tt.line {
			t.Errorf("CleanLine(%q) = %q, want %q", tt.in, got, tt.line)
		}
		got := CleanText(tt.in)
		if got != tt.text {
			t.Errorf("CleanText(%q) = %q, want %q", tt.in, got, tt.text)
		}
		if HasControl(CleanLine(tt.in), "") || HasControl(got, "\n\t") {
			t.Errorf("%q: cleaned text still has control characters", tt.in)
		}
	}
}
