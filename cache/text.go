package cache

import "github.com/modelstorefs/modelstorefs/digits"

// CleanText makes text from a store harmless to show (digits.CleanText),
// for the filesystem, which reaches the layers below only through cache.
func CleanText(s string) string { return digits.CleanText(s) }
