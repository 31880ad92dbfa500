package remote

// Digests a store states for its files, from the headers of its answers:
// RFC 9530's Repr-Digest, RFC 3230's Digest, and the checksums of the
// object stores that sit behind static stores (x-goog-hash,
// x-amz-checksum-*). An ETag is never taken for a digest.

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"net/http"
	"strings"
)

// Digest algorithms, named as RFC 9530's registry names them.
const (
	AlgSHA512 = "sha-512"
	AlgSHA256 = "sha-256"
	AlgMD5    = "md5"
	AlgCRC32C = "crc32c"
)

// algStrength orders the algorithms, strongest first.
var algStrength = map[string]int{AlgSHA512: 4, AlgSHA256: 3, AlgMD5: 2, AlgCRC32C: 1}

// algSize is each algorithm's digest length in bytes.
var algSize = map[string]int{AlgSHA512: 64, AlgSHA256: 32, AlgMD5: 16, AlgCRC32C: 4}

// ErrDigestMismatch: a file's bytes did not match the digest the store
// states for it.
var ErrDigestMismatch = errors.New("digest mismatch: the bytes received are not the file the store describes")

// Digest is a file's checksum. The zero value is no digest.
type Digest struct {
	Alg string // AlgSHA256, ...
	Sum string // the checksum's bytes
}

// IsZero reports whether d holds no digest.
func (d Digest) IsZero() bool { return d.Alg == "" }

// String is "sha-256:<hex>", for logs and messages.
func (d Digest) String() string {
	if d.IsZero() {
		return "none"
	}
	return d.Alg + ":" + hex.EncodeToString([]byte(d.Sum))
}

// New returns a hash computing d's algorithm.
func (d Digest) New() hash.Hash {
	switch d.Alg {
	case AlgSHA512:
		return sha512.New()
	case AlgSHA256:
		return sha256.New()
	case AlgMD5:
		return md5.New()
	case AlgCRC32C:
		return crc32.New(crc32.MakeTable(crc32.Castagnoli))
	}
	return nil
}

// Stronger reports whether d is a stronger digest than o.
func (d Digest) Stronger(o Digest) bool { return algStrength[d.Alg] > algStrength[o.Alg] }

// NewDigest makes a digest of alg from its bytes, checking their length.
func NewDigest(alg string, sum []byte) (Digest, error) {
	n, ok := algSize[alg]
	if !ok {
		return Digest{}, fmt.Errorf("unknown digest algorithm %q", alg)
	}
	if len(sum) != n {
		return Digest{}, fmt.Errorf("%s digest of %d bytes, want %d", alg, len(sum), n)
	}
	return Digest{Alg: alg, Sum: string(sum)}, nil
}

// ParseHexDigest reads a hex digest of alg (a SHA256SUMS line's).
func ParseHexDigest(alg, s string) (Digest, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return Digest{}, fmt.Errorf("%s digest: %w", alg, err)
	}
	return NewDigest(alg, b)
}

// digestOf returns the strongest digest an answer's headers state for the
// whole file. Repr-Digest (RFC 9530) is the representation's, also on a
// 206; Content-Digest is the body's and is ignored. x-goog-hash and
// x-amz-checksum-* are the object's. Malformed values are ignored.
func digestOf(h http.Header) Digest {
	var best Digest
	take := func(alg string, b64 string) {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return
		}
		if d, err := NewDigest(alg, b); err == nil && d.Stronger(best) {
			best = d
		}
	}
	// Repr-Digest: sha-256=:BASE64:, sha-512=:BASE64: (structured field).
	eachItem(h, "Repr-Digest", func(k, val string) {
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == ':' && val[len(val)-1] == ':' {
			take(map[string]string{"sha-256": AlgSHA256, "sha-512": AlgSHA512}[k], val[1:len(val)-1])
		}
	})
	// Digest (RFC 3230): SHA-256=BASE64, SHA-512=BASE64, MD5=BASE64.
	eachItem(h, "Digest", func(k, val string) {
		take(map[string]string{"sha-256": AlgSHA256, "sha-512": AlgSHA512, "md5": AlgMD5}[k], val)
	})
	// x-goog-hash: crc32c=BASE64, md5=BASE64 (one header or several).
	eachItem(h, "X-Goog-Hash", func(k, val string) {
		take(map[string]string{"crc32c": AlgCRC32C, "md5": AlgMD5}[k], val)
	})
	// S3 with x-amz-checksum-mode: ENABLED. A checksum of a multipart
	// upload ("...-3") is a checksum of checksums: not the file's.
	for alg, name := range map[string]string{AlgSHA256: "X-Amz-Checksum-Sha256", AlgCRC32C: "X-Amz-Checksum-Crc32c"} {
		if v := h.Get(name); v != "" && !strings.Contains(v, "-") && h.Get("X-Amz-Checksum-Type") != "COMPOSITE" {
			take(alg, v)
		}
	}
	return best
}

// eachItem calls fn with each "key=value" item (key in lower case) of the
// comma-separated values of header name.
func eachItem(h http.Header, name string, fn func(k, v string)) {
	for _, v := range h.Values(name) {
		for _, item := range strings.Split(v, ",") {
			if k, val, ok := strings.Cut(strings.TrimSpace(item), "="); ok {
				fn(strings.ToLower(k), val)
			}
		}
	}
}

// Check reports whether data is the file d describes (a zero d says
// nothing: true).
func (d Digest) Check(data []byte) bool {
	h := d.New()
	if h == nil {
		return true
	}
	h.Write(data)
	return string(h.Sum(nil)) == d.Sum
}
