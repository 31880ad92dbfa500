package remote

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash/crc32"
	"net/http"
	"testing"
)

func TestDigestOf(t *testing.T) {
	data := []byte("weights")
	s256 := sha256.Sum256(data)
	s512 := sha512.Sum512(data)
	m5 := md5.Sum(data)
	c := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	crc := []byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)}
	b64 := base64.StdEncoding.EncodeToString
	for _, tc := range []struct {
		name    string
		headers map[string][]string
		alg     string
		sum     []byte
	}{
		{"none", nil, "", nil},
		{"repr sha-256", map[string][]string{"Repr-Digest": {"sha-256=:" + b64(s256[:]) + ":"}}, AlgSHA256, s256[:]},
		{"repr both: sha-512 wins", map[string][]string{"Repr-Digest": {"sha-256=:" + b64(s256[:]) + ":, sha-512=:" + b64(s512[:]) + ":"}}, AlgSHA512, s512[:]},
		{"repr unknown alg", map[string][]string{"Repr-Digest": {"sha3-256=:" + b64(s256[:]) + ":"}}, "", nil},
		{"repr wrong length", map[string][]string{"Repr-Digest": {"sha-256=:" + b64(m5[:]) + ":"}}, "", nil},
		{"repr not base64", map[string][]string{"Repr-Digest": {"sha-256=:***:"}}, "", nil},
		{"content-digest ignored", map[string][]string{"Content-Digest": {"sha-256=:" + b64(s256[:]) + ":"}}, "", nil},
		{"rfc 3230", map[string][]string{"Digest": {"SHA-256=" + b64(s256[:])}}, AlgSHA256, s256[:]},
		{"rfc 3230 md5", map[string][]string{"Digest": {"MD5=" + b64(m5[:])}}, AlgMD5, m5[:]},
		{"goog", map[string][]string{"X-Goog-Hash": {"crc32c=" + b64(crc), "md5=" + b64(m5[:])}}, AlgMD5, m5[:]},
		{"goog crc only", map[string][]string{"X-Goog-Hash": {"crc32c=" + b64(crc)}}, AlgCRC32C, crc},
		{"amz sha256", map[string][]string{"X-Amz-Checksum-Sha256": {b64(s256[:])}}, AlgSHA256, s256[:]},
		{"amz multipart", map[string][]string{"X-Amz-Checksum-Sha256": {b64(s256[:]) + "-3"}}, "", nil},
		{"amz composite", map[string][]string{"X-Amz-Checksum-Crc32c": {b64(crc)}, "X-Amz-Checksum-Type": {"COMPOSITE"}}, "", nil},
		{"etag never", map[string][]string{"Etag": {`"` + b64(m5[:]) + `"`}}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.headers {
				for _, x := range v {
					h.Add(k, x)
				}
			}
			d := digestOf(h)
			if d.Alg != tc.alg || d.Sum != string(tc.sum) {
				t.Fatalf("got %v, want %s %x", d, tc.alg, tc.sum)
			}
			if !d.IsZero() {
				hh := d.New()
				hh.Write(data)
				if string(hh.Sum(nil)) != d.Sum {
					t.Errorf("%s of the data differs from the stated digest", d.Alg)
				}
			}
		})
	}
}
