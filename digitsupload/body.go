package digitsupload

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"strings"

	"github.com/modelstorefs/modelstorefs/cache"
)

// archiveField is the form field upload_archive reads the archive from.
const archiveField = "archive"

// body is the multipart/form-data request: one part, the archive, between
// a prefix and a suffix of fixed bytes. Its length is known in advance.
type body struct {
	contentType    string
	prefix, suffix []byte
	archive        *archive
}

// newBody frames a as the file field "archive"; filename only tells
// DIGITS' logs what it is.
func newBody(a *archive, filename string) (*body, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, archiveField, safeFilename(filename)+".tar"))
	h.Set("Content-Type", "application/x-tar")
	if _, err := mw.CreatePart(h); err != nil {
		return nil, err
	}
	b := &body{contentType: mw.FormDataContentType(), archive: a}
	b.prefix = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return nil, err
	}
	b.suffix = bytes.Clone(buf.Bytes())
	return b, nil
}

// length is the exact Content-Length.
func (b *body) length() int64 {
	return int64(len(b.prefix)) + b.archive.size() + int64(len(b.suffix))
}

// writeTo streams the whole body to w.
func (b *body) writeTo(ctx context.Context, w io.Writer, content cache.Content) error {
	if _, err := w.Write(b.prefix); err != nil {
		return err
	}
	if err := b.archive.writeTo(ctx, w, content); err != nil {
		return err
	}
	_, err := w.Write(b.suffix)
	return err
}

// safeFilename keeps a model name's plain ASCII letters, digits and
// ".-_", so the part's header needs no escaping rules.
func safeFilename(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
	if strings.Trim(s, "._") == "" {
		return "model"
	}
	return s
}
