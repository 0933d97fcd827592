package api

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
)

// codeUnsupportedMediaType is the problem code of a 415: a body of a media
// type or a content coding the endpoint does not take. The answer carries
// Accept-Encoding (RFC 7694) listing the codings that are taken.
const codeUnsupportedMediaType eventvault.Code = "unsupported_media_type"

// acceptedEncodings is what a 415 answers in Accept-Encoding.
const acceptedEncodings = "gzip, identity"

// decodeBody decodes the request's JSON body into v with decodeStrict,
// after readBody has checked its media type and coding.
func decodeBody(c *gin.Context, v any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	return decodeStrict(body, v)
}

// readBody returns the request body, decoded from its content coding. The
// media type must be application/json (type, subtype and parameter names
// compared case-insensitively, as RFC 9110 has them), with no charset or
// charset utf-8; an absent Content-Type is taken as JSON. The coding may be
// identity or one layer of gzip. MaxBodyBytes bounds the body as sent and,
// for gzip, as decoded, so a small body that inflates to gigabytes is a
// 413 that never holds more than MaxBodyBytes in memory.
func readBody(c *gin.Context) ([]byte, error) {
	if err := checkMediaType(c.GetHeader("Content-Type")); err != nil {
		return nil, err
	}
	gzipped, err := contentCoding(c.Request.Header.Values("Content-Encoding"))
	if err != nil {
		return nil, err
	}
	var r io.Reader = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	if gzipped {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, gzipError(err)
		}
		defer zr.Close()
		r = zr
	}
	body, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
		return nil, &eventvault.Error{Code: eventvault.ETOOLARGE, Err: err, Message: fmt.Sprintf("the body is larger than %d bytes: %s", MaxBodyBytes, smallerBody(c))}
	}
	if err != nil {
		if gzipped {
			return nil, gzipError(err)
		}
		return nil, jsonError(err)
	}
	if len(body) > MaxBodyBytes {
		return nil, &eventvault.Error{Code: eventvault.ETOOLARGE, Message: fmt.Sprintf("the body is larger than %d bytes once decoded: %s", MaxBodyBytes, smallerBody(c))}
	}
	return body, nil
}

// smallerBody says what to do about a body over MaxBodyBytes: only the
// append endpoint takes a batch to split.
func smallerBody(c *gin.Context) string {
	if c.FullPath() == "/v1/streams/:stream/events" {
		return "split the batch"
	}
	return "send a smaller body"
}

// checkMediaType accepts application/json, with no charset or utf-8.
func checkMediaType(header string) error {
	if header == "" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(header)
	if err != nil {
		return eventvault.Errorf(eventvault.EINVALID, "Content-Type is not a media type: send application/json")
	}
	if mt != "application/json" {
		return unsupported("Content-Type is %q: send application/json", eventvault.Truncate(mt, 60))
	}
	for name, value := range params {
		if name != "charset" {
			return unsupported("Content-Type parameter %q is not taken: send application/json, optionally with charset=utf-8", eventvault.Truncate(name, 40))
		}
		if !strings.EqualFold(value, "utf-8") {
			return unsupported("charset %q is not taken: send UTF-8 JSON (charset=utf-8, or no charset)", eventvault.Truncate(value, 40))
		}
	}
	return nil
}

// contentCoding reports whether the body is gzipped: Content-Encoding may
// list identity, and at most one gzip (x-gzip is its old alias, RFC 9110
// section 8.4.1.3). Anything else is a 415 naming the coding.
func contentCoding(headers []string) (gzipped bool, err error) {
	for _, h := range headers {
		for _, coding := range strings.Split(h, ",") {
			coding = strings.ToLower(strings.TrimSpace(coding))
			switch coding {
			case "", "identity":
			case "gzip", "x-gzip":
				if gzipped {
					return false, unsupported("Content-Encoding applies gzip twice: send one layer of gzip, or none")
				}
				gzipped = true
			default:
				return false, unsupported("Content-Encoding %q is not taken: send the body as is, or gzip it", eventvault.Truncate(coding, 40))
			}
		}
	}
	return gzipped, nil
}

func unsupported(format string, args ...any) error {
	return eventvault.Errorf(codeUnsupportedMediaType, format, args...)
}

// gzipError is the client error for a body labelled gzip that does not
// decode, or that inflates past the limit.
func gzipError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return jsonError(err)
	}
	return &eventvault.Error{Code: eventvault.EINVALID, Message: "the body is labelled Content-Encoding: gzip but is not valid gzip: compress it, or drop the header", Err: err}
}

// isEmpty reports whether body holds nothing but JSON white space.
func isEmpty(body []byte) bool {
	return len(bytes.TrimLeft(body, " \t\r\n")) == 0
}
