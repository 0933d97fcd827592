package vault

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// ciphertextPrefix starts every Transit ciphertext (Vault's default
// version template), followed by the key version, ':' and base64.
const ciphertextPrefix = "vault:v"

// maxCiphertext bounds what is sent to Vault: a wrapped 32-byte key is
// about 90 bytes.
const maxCiphertext = 4096

// ciphertext is a parsed Transit ciphertext.
type ciphertext struct {
	version int
	body    string // canonical standard base64
}

func (c ciphertext) String() string {
	return ciphertextPrefix + strconv.Itoa(c.version) + ":" + c.body
}

// parseCiphertext accepts only the canonical form "vault:vN:<base64>": N a
// decimal without a leading zero, the base64 standard, padded and strict.
// Vault itself is more lenient (it reads "v0" as version 1), which would
// let an altered ciphertext decrypt; refusing every other spelling here
// means that one key has exactly one wrapped form per encryption. The error
// names no byte of the input.
func parseCiphertext(b []byte) (ciphertext, error) {
	s := string(b)
	switch {
	case len(s) == 0:
		return ciphertext{}, errors.New("the key wrapped by Vault Transit is empty")
	case len(s) > maxCiphertext:
		return ciphertext{}, errors.New("the key wrapped by Vault Transit is too long")
	case !strings.HasPrefix(s, ciphertextPrefix):
		return ciphertext{}, errors.New("the key wrapped by Vault Transit does not start with vault:v")
	}
	ver, body, ok := strings.Cut(s[len(ciphertextPrefix):], ":")
	if !ok {
		return ciphertext{}, errors.New("the key wrapped by Vault Transit has no key version")
	}
	n, err := strconv.Atoi(ver)
	if err != nil || n < 1 || strconv.Itoa(n) != ver {
		return ciphertext{}, errors.New("the key wrapped by Vault Transit has an invalid key version")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(body)
	if err != nil || len(raw) == 0 || base64.StdEncoding.EncodeToString(raw) != body {
		return ciphertext{}, errors.New("the key wrapped by Vault Transit is not canonical base64")
	}
	return ciphertext{version: n, body: body}, nil
}
